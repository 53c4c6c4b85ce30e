"""Developer sessions: ``nox -s tests lint typecheck``, ``nox -s demo``, ``nox -s bench``.

Every session installs torch pinned to 2.13.0 first, so that on a fresh machine the CPU
build is used and no multi-GB CUDA wheels are pulled in.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

TORCH = "torch==2.13.0"
PYTHON = "3.11"


def _install(session: nox.Session, extras: str = "") -> None:
    session.install(TORCH)
    session.install("-e", f".[{extras}]" if extras else ".")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Unit, parity, property (hypothesis) and 2-process DDP tests."""
    _install(session, "test")
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
    """The main job on embedded data."""
    _install(session)
    session.run("python", "examples/coco_demo.py", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against the reference libraries, installed only here."""
    _install(session, "bench")
    session.run("python", "benchmarks/box_iou.py")
    session.run("python", "benchmarks/coco_bbox.py", *session.posargs)
    session.run("python", "benchmarks/anomaly.py")
    session.run("python", "benchmarks/coco_segm.py")
