"""noxfile: sessions say what they install before pip runs, and skip pip when the virtualenv has it."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest


@pytest.fixture
def noxfile(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The project's noxfile, imported with a stand-in ``nox`` where nox is not installed (nox -s tests)."""
    try:
        import nox  # noqa: F401
    except ImportError:
        stub = ModuleType("nox")
        stub.options = SimpleNamespace()  # type: ignore[attr-defined]
        stub.session = lambda **kwargs: lambda func: func  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "nox", stub)
    monkeypatch.delitem(sys.modules, "noxfile", raising=False)
    return importlib.import_module("noxfile")


class FakeSession:
    """What the sessions call on a nox Session, recorded in order; ``run`` answers the import check."""

    def __init__(self, location: Path, imports: bool = True) -> None:
        self.virtualenv = SimpleNamespace(location=str(location))
        self.posargs: list[str] = []
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.imports = imports

    def log(self, *args: Any) -> None:
        self.calls.append(("log", args))

    def install(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("install", args))

    def run(self, *args: Any, **kwargs: Any) -> str | None:
        self.calls.append(("run", args))
        if args[:2] == ("python", "-c"):  # the import check
            return "objdet-ok 2.13.0\n" if self.imports else "ModuleNotFoundError: No module named 'torch'\n"
        return None

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.calls]


def test_demo_says_what_it_installs_then_skips_pip_once_installed(
    noxfile: ModuleType, tmp_path: Path
) -> None:
    first = FakeSession(tmp_path)
    noxfile.demo(first)
    assert first.kinds() == ["log", "install", "log", "install", "run"]  # each install announced
    assert "torch==2.13.0" in first.calls[0][1][0] and "a minute or two" in first.calls[0][1][0]
    assert first.calls[1][1] == ("torch==2.13.0",)
    assert first.calls[-1][1][:3] == ("objdet", "eval", "--demo")
    again = FakeSession(tmp_path)
    noxfile.demo(again)
    assert "install" not in again.kinds()
    assert any("already installed" in str(args) for kind, args in again.calls if kind == "log")
    broken = FakeSession(tmp_path, imports=False)  # stamp there, but torch does not import
    noxfile.demo(broken)
    assert broken.kinds().count("install") == 2


def test_a_changed_pyproject_or_other_extras_install_again(noxfile: ModuleType, tmp_path: Path) -> None:
    noxfile.demo(FakeSession(tmp_path))
    stamp = tmp_path / noxfile.STAMP
    stamp.write_text(stamp.read_text().replace("pyproject.toml=", "pyproject.toml=old"))
    session = FakeSession(tmp_path)
    noxfile.demo(session)
    assert session.kinds().count("install") == 2
    docs = FakeSession(tmp_path)  # the same virtualenv with the docs extra: not what the stamp says
    noxfile._install(docs, "docs")
    assert ("install", ("-e", ".[docs]")) in docs.calls
