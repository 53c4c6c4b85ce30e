"""Sphinx configuration: MyST Markdown pages, autodoc (Google-style docstrings), doctested examples.

Build: ``nox -s docs`` (HTML with warnings as errors, then the doctest builder). Nothing is
fetched at build time (no intersphinx); the figures are drawn by ``docs/_figures.py`` from the
checkout's own plotting code into ``docs/_generated/`` before the pages are read.
"""

from __future__ import annotations

import doctest
import sys
from pathlib import Path

from sphinx.application import Sphinx

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT / "src"))  # document the checkout, whatever is installed
sys.path.insert(0, str(DOCS))

import objdet  # noqa: E402

project = "objdet"
author = "objdet contributors"
copyright = "objdet contributors"
version = release = objdet.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_generated/*.md", "README.md"]
templates_path: list[str] = []

# MyST: ```{directive} fences, ::: fences, definition lists, anchors for headings down to ###.
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Broken cross-references are warnings (hence errors): every reference into objdet must
# resolve. Without intersphinx, names of other libraries cannot, so those are let through.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|torchmetrics|numpy|np|matplotlib|lightning|collections\.abc|typing|os)(\..*)?"),
    (r"py:.*", r"(Tensor|Figure|Axes|Metric|Sequence|Mapping|Callable|Any)"),
    (r"py:class", r"(Path|ExtractFn|PlotKind)"),  # type aliases and pathlib in callback signatures
]

# autodoc + napoleon: Google-style docstrings as written in src/.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_class_signature = "mixed"
autodoc_preserve_defaults = True

# Doctests: the ```{doctest} / ```{testcode} blocks of the pages. The ``>>>`` examples inside
# docstrings are not run here: ``pytest --doctest-modules src/objdet`` (nox -s tests) runs them.
doctest_test_doctest_blocks = ""
# Exact output and exact exception messages (Sphinx's default would add ELLIPSIS and
# IGNORE_EXCEPTION_DETAIL, which let wrong numbers or error messages pass).
doctest_default_flags = doctest.DONT_ACCEPT_TRUE_FOR_1
doctest_global_setup = """
import torch
torch.manual_seed(0)
"""

highlight_language = "text"
pygments_style = "sphinx"
html_theme = "alabaster"
html_theme_options = {
    "description": "Exact, fast, bounded-memory detection and anomaly metrics for PyTorch and Lightning",
    "fixed_sidebar": True,
    "page_width": "1120px",
    "sidebar_width": "240px",
}
html_title = f"objdet {release}"
html_static_path: list[str] = []


def _draw_figures(app: Sphinx) -> None:
    import _figures

    _figures.draw_all(DOCS / "_generated")


def setup(app: Sphinx) -> None:
    app.connect("builder-inited", _draw_figures)
