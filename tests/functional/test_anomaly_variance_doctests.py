"""The runnable examples in the anomaly / variance docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "objdet.functional.anomaly",
    "objdet.functional.histogram",
    "objdet.functional.moments",
    "objdet.functional.sketch",
    "objdet.training.metrics.anomaly",
    "objdet.training.metrics.variance",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
