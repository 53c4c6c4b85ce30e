"""benchmarks/run.py: every listed module follows the protocol; the table it writes is right.

Runs two real benchmarks at ``--quick`` sizes (about a second), never the full sizes.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("objdet_benchmarks_run", ROOT / "benchmarks" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def _keep_threads() -> Iterator[None]:
    threads = torch.get_num_threads()  # the benchmarks set torch's thread count
    yield
    torch.set_num_threads(threads)


def _seconds(cell: str) -> float:
    value, unit = cell.split()
    return float(value) * {"s": 1.0, "ms": 1e-3}[unit]


def _table_rows(markdown: str) -> list[list[str]]:
    """Cells of the Markdown table's body rows (escaped pipes stay inside their cell)."""
    body = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line][1:]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in body]


def test_every_listed_module_exists_and_has_run(runner: ModuleType) -> None:
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("*.py")} - {"run"}
    assert set(runner.MODULES) <= scripts
    for name in runner.MODULES:
        assert callable(runner.load(name).run)


@pytest.mark.usefixtures("_keep_threads")
def test_quick_run_writes_a_consistent_markdown_table(runner: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "results.md"
    rows = runner.main(["--quick", "--only", "box_iou", "anomaly", "--markdown", str(out)])
    assert [r.module for r in rows][:1] == ["box_iou"] and rows[-1].module == "anomaly"
    text = out.read_text()
    assert "--quick" in text and "quick sizes" in text
    assert "torch 2." in text  # the machine line names the versions
    table = _table_rows(text)
    assert len(table) == len(rows)
    for cells, row in zip(table, rows, strict=True):
        assert len(cells) == 7, cells
        benchmark, objdet, reference, reference_time, ratio, speedup, note = cells
        assert benchmark == row.benchmark.replace("|", "\\|")
        assert reference == row.reference.replace("|", "\\|")
        assert note == row.note.replace("|", "\\|")
        # the ratio is objdet's time over the reference's, as printed (3 significant digits)
        printed = _seconds(objdet) / _seconds(reference_time)
        assert float(ratio) == pytest.approx(printed, rel=0.01)
        assert float(speedup.rstrip("x")) == pytest.approx(1 / printed, rel=0.01)
    iou = rows[0]
    assert "bitwise identical: True" in iou.note
    assert "400 x 500" in iou.benchmark  # the quick size, not the full one


def test_rows_are_checked(runner: ModuleType) -> None:
    good = {"benchmark": "b", "objdet_s": 0.5, "reference": "r", "reference_s": 2.0, "note": ""}
    assert runner.to_row("m", good).ratio == 0.25
    assert runner.to_row("m", {**good, "reference_s": None}).ratio is None
    with pytest.raises(ValueError, match=r"missing \['note'\]"):
        runner.to_row("m", {k: v for k, v in good.items() if k != "note"})
    with pytest.raises(ValueError, match="unexpected \\['extra'\\]"):
        runner.to_row("m", {**good, "extra": 1})
    for bad in (0.0, -1.0, True, "1", float("nan")):
        with pytest.raises(ValueError, match="objdet_s"):
            runner.to_row("m", {**good, "objdet_s": bad})
    with pytest.raises(ValueError, match="no benchmark module 'nope'"):
        runner.load("nope")


def test_missing_reference_shows_as_n_a(runner: ModuleType) -> None:
    row = runner.to_row(
        "m",
        {"benchmark": "b", "objdet_s": 1.5, "reference": "lib", "reference_s": None, "note": "not installed"},
    )
    text = runner.format_markdown([row], "cpu", "python benchmarks/run.py", "2026-01-01", "0 0 0")
    assert _table_rows(text) == [["b", "1.500 s", "lib", "n/a", "n/a", "n/a", "not installed"]]
    assert "n/a" in runner.format_text([row])
