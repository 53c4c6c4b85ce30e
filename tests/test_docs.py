"""The docs keep up with the code: every public name has an autodoc entry, every code example is run.

These checks need no Sphinx (``nox -s docs`` builds the pages and runs the examples); they
fail as soon as a public class or function is added without a line in docs/api/, or a
Python example is written as a plain code block that the doctest builder would not run.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import objdet

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: An autodoc directive and its option lines.
DIRECTIVE = re.compile(r"^\.\. auto(module|class|function|data|exception)::\s+(\S+)((?:\n +:.*)*)", re.M)
#: Fences of Python code that sphinx.ext.doctest would not run ({testcode} / {doctest} it does).
PYTHON_FENCES = {"python", "py", "python3", "pycon", "ipython", "{code-block} python", "{code} python"}


def _pages() -> list[Path]:
    return [p for p in DOCS.rglob("*.md") if "_build" not in p.parts and p.name != "README.md"]


def _resolve(dotted: str) -> Any:
    """The object named by a dotted path (module, then attributes)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def _module_members(module: ModuleType) -> list[Any]:
    """What ``automodule`` with ``:members:`` documents: ``__all__``, else the public names defined there."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            n
            for n, v in vars(module).items()
            if not n.startswith("_") and getattr(v, "__module__", None) == module.__name__
        ]
    return [getattr(module, n) for n in names]


def _documented() -> tuple[set[int], list[str]]:
    ids: set[int] = set()
    targets = []
    for page in (DOCS / "api").glob("*.md"):
        for kind, target, options in DIRECTIVE.findall(page.read_text()):
            targets.append(target)
            obj = _resolve(target)
            ids.add(id(obj))
            if kind == "module" and re.search(r"^ +:members:", options, re.M):
                ids.update(id(m) for m in _module_members(obj))
    return ids, targets


def _public_modules() -> list[ModuleType]:
    modules = [objdet]
    for info in pkgutil.walk_packages(objdet.__path__, "objdet."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        modules.append(importlib.import_module(info.name))
    return modules


def test_autodoc_directives_name_existing_objects() -> None:
    _, targets = _documented()  # _resolve raises on a name that does not exist
    assert any(t.endswith("MeanAveragePrecision") for t in targets)


def test_every_public_name_has_an_api_entry() -> None:
    documented, _ = _documented()
    missing = []
    for module in _public_modules():
        for name in getattr(module, "__all__", []):
            if id(getattr(module, name)) not in documented:
                missing.append(f"{module.__name__}.{name}")
    assert not missing, f"add these to a page in docs/api/ (autoclass / autofunction): {missing}"


def test_python_examples_are_doctests() -> None:
    untested = []
    for page in _pages():
        for lineno, line in enumerate(page.read_text().splitlines(), 1):
            fence = re.match(r"^\s*(```+|:::+)\s*(\S.*)?$", line)
            if fence and (fence.group(2) or "").strip() in PYTHON_FENCES:
                untested.append(f"{page.relative_to(ROOT)}:{lineno}")
    assert not untested, f"use a ```{{testcode}} or ```{{doctest}} block so the example is run: {untested}"


def test_every_page_is_in_a_toctree() -> None:
    linked = set()
    for page in _pages():
        for block in re.findall(r"```\{toctree\}\n(.*?)```", page.read_text(), re.S):
            for entry in block.splitlines():
                entry = entry.strip()
                if entry and not entry.startswith(":"):
                    linked.add((page.parent / entry).with_suffix(".md").resolve())
    orphans = [str(p.relative_to(ROOT)) for p in _pages() if p.name != "index.md" or p.parent != DOCS]
    orphans = [p for p in orphans if (ROOT / p).resolve() not in linked]
    assert not orphans, f"pages in no toctree (Sphinx -W fails on them): {orphans}"
