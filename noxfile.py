"""Developer sessions: ``nox -s tests lint typecheck``, ``nox -s demo``, ``nox -s bench``, ``nox -s docs``.

Every session installs torch pinned to 2.13.0 first, so that on a fresh machine the CPU
build is used and no multi-GB CUDA wheels are pulled in. Virtualenvs are reused: a session
says what it installs before pip starts (pip's own output is hidden), and installs nothing
when its virtualenv already holds what this pyproject.toml asks for (a stamp in the
virtualenv records it; editing pyproject.toml or the extras installs again).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

TORCH = "torch==2.13.0"
PYTHON = "3.11"


STAMP = ".objdet-installed"
_CHECK = "import torch, objdet; print('objdet-ok', torch.__version__.split('+')[0])"


def _wanted(extras: str) -> str:
    """What an install with these extras is: the torch pin, the extras and pyproject.toml's hash."""
    project = hashlib.sha256((Path(__file__).parent / "pyproject.toml").read_bytes()).hexdigest()
    return f"{TORCH} extras=[{extras}] pyproject.toml={project}\n"


def _installed(session: nox.Session, stamp: Path | None, want: str) -> bool:
    """The stamp says ``want`` and torch (the pinned version) and objdet import."""
    if stamp is None or not stamp.is_file() or stamp.read_text() != want:
        return False
    out = session.run("python", "-c", _CHECK, silent=True, success_codes=[0, 1], log=False)
    return isinstance(out, str) and f"objdet-ok {TORCH.split('==')[1]}" in out


def _install(session: nox.Session, extras: str = "") -> None:
    """torch (pinned) and objdet in editable mode with ``extras``, unless already there."""
    name = f"objdet[{extras}]" if extras else "objdet"
    location = getattr(session.virtualenv, "location", None)
    stamp = Path(location) / STAMP if location else None
    want = _wanted(extras)
    if _installed(session, stamp, want):
        session.log(f"{TORCH} and {name} already installed in this virtualenv: skipping pip")
        return
    session.log(f"installing {TORCH} (CPU build; a minute or two on a fresh machine, once)")
    session.install(TORCH)
    session.log(f"installing {name} and its dependencies (editable)")
    session.install("-e", f".[{extras}]" if extras else ".")
    if stamp is not None:
        stamp.write_text(want)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Unit, parity, property (hypothesis) and 2-process DDP tests."""
    _install(session, "test")
    # the LVIS API, the LVIS tests' reference: its evaluation needs numpy and pycocotools only;
    # its declared dependencies would add opencv-python and Cython (see pyproject.toml)
    session.run("python", "-m", "pip", "install", "-q", "--no-deps", "lvis==0.5.3", silent=True)
    session.run(
        "pytest",
        "-n",
        "2",
        "--hypothesis-profile",
        "ci",
        "--doctest-modules",
        "src/objdet",
        "tests",
        *session.posargs,
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy on src/."""
    _install(session)
    session.install("mypy>=1.10")
    session.run("mypy")


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The main job on the embedded demo data: ``objdet eval --demo``, plots in out/demo.

    Needs torch for the plots (the evaluation itself does not import it), so it installs
    objdet with its dependencies like the other sessions.
    """
    _install(session)
    session.run("objdet", "eval", "--demo", "--out", "out/demo", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Every benchmark against the reference libraries (installed only here): one table of ratios.

    Without arguments the table is also written to benchmarks/results.md (shown by
    benchmarks/README.md and the docs); arguments go to benchmarks/run.py instead, e.g.
    ``nox -s bench -- --quick`` or ``nox -s bench -- --only coco_bbox --markdown out.md``.
    """
    _install(session, "bench")
    session.run("python", "benchmarks/run.py", *(session.posargs or ["--markdown", "benchmarks/results.md"]))


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Sphinx HTML (docs/_build/html) with warnings as errors, then the pages' examples as doctests."""
    _install(session, "docs")
    session.run(
        "sphinx-build", "-E", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html", *session.posargs
    )
    session.run("sphinx-build", "-E", "-W", "--keep-going", "-b", "doctest", "docs", "docs/_build/doctest")


@nox.session(python=PYTHON)
def examples(session: nox.Session) -> None:
    """The Lightning examples on synthetic data (CPU; figures under out/)."""
    _install(session)
    session.run("python", "examples/train_anomaly.py", *session.posargs)
    session.run("python", "examples/train_detector.py", *session.posargs)
