"""``objdet eval --report``: one PDF with the summary, per-class table, every figure and the tables."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import pytest

from objdet.data import demo_files
from tests.test_cli import PNGS, run

pytestmark = pytest.mark.filterwarnings("ignore:Encountered more than 100 detections")


def pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf))


def pdf_text(pdf: bytes) -> bytes:
    """The content streams, inflated (the text pages' strings are readable there)."""
    out = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            out.append(zlib.decompress(stream))
        except zlib.error:
            continue
    return b"\n".join(out).replace(rb"\(", b"(").replace(rb"\)", b")")  # PDF strings escape parentheses


def slices_file(tmp_path: Path) -> Path:
    ids = [im["id"] for im in json.loads(demo_files()[0].read_text())["images"]]
    path = tmp_path / "slices.json"
    path.write_text(json.dumps({"even": ids[::2], "first ten": ids[:10]}))
    return path


def test_report_with_every_figure_and_table(tmp_path: Path) -> None:
    options = [
        "--calibration",
        "--fbeta",
        "2",
        "--tide",
        "--bootstrap",
        "50",
        "--slices",
        str(slices_file(tmp_path)),
    ]
    report, out_dir = tmp_path / "r" / "report.pdf", tmp_path / "out"
    code, out, err = run("eval", "--demo", *options, "--out", str(out_dir), "--report", str(report))
    assert code == 0, err
    data = report.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    figures = [*PNGS, "reliability_diagram.png", "f2_confidence.png", "tide.png"]
    # summary, per class, the figures, slices, bootstrap
    assert pages(data) == 2 + len(figures) + 2
    assert f"wrote {report} ({2 + len(figures) + 2} pages)" in out
    for name in figures:  # --out still gets the PNGs (drawn once, for both)
        assert (out_dir / name).read_bytes().startswith(b"\x89PNG"), name
    text = pdf_text(data)
    for expected in (
        b"Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.588",
        b"48 images; files read in",
        b"Calibration (IoU=0.5",
        b"TIDE (box IoU: foreground 0.5, background 0.1)",
        b"circle",
        b"first ten",
        b"Bootstrap over images: 95% percentile intervals, 50 resamples, seed 0",
        b"AP diamond",
    ):
        assert expected in text, expected
    assert b"objdet eval: demo_dt.json on demo_gt.json" in data  # the Title of the metadata


def test_report_alone_and_quiet(tmp_path: Path) -> None:
    report = tmp_path / "report.pdf"
    code, out, err = run("eval", "--demo", "-q", "--report", str(report))
    assert code == 0 and out == "" and err == ""
    assert pages(report.read_bytes()) == 2 + len(PNGS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.pdf"]  # no PNG, no temporary file
    code, _, _ = run(
        "eval", "--demo", "-q", "--no-plots", "--out", str(tmp_path / "o"), "--report", str(report)
    )
    assert code == 0 and not list((tmp_path / "o").glob("*.png"))  # --no-plots: the PNGs only
    assert pages(report.read_bytes()) == 2 + len(PNGS)


def test_class_names_beyond_latin_1(tmp_path: Path) -> None:
    names = ["κύκλος", "квадрат", "triangle", "losange", "étoile"]
    report = tmp_path / "report.pdf"
    code, _, err = run("eval", "--demo", "-q", "--class-names", *names, "--report", str(report))
    assert code == 0, err
    assert pages(report.read_bytes()) == 2 + len(PNGS)


def test_text_pages() -> None:
    from objdet.cli import text_pages

    lines = ["head", "----", *(f"row {k}" for k in range(7))]
    got = text_pages(lines, header=2, per_page=5)
    assert got == [
        ["head", "----", "row 0", "row 1", "row 2"],
        ["head", "----", "row 3", "row 4", "row 5"],
        ["head", "----", "row 6"],
    ]
    assert text_pages(["head", "----"], header=2) == [["head", "----"]]
    assert text_pages([]) == [[]]


def test_report_pages_hold_the_summary_and_the_tables() -> None:
    import argparse

    from objdet.cli import Evaluation, report_pages

    stats = [0.5 + k / 100 for k in range(12)]
    row = {"class": "cat", "category_id": 3, "n_gt": 4, "AP": 0.5, "AP50": 0.6, "AP75": 0.4, "AR100": 0.7}
    row.update(precision=0.8, recall=0.5, f1=0.6)
    evaluation = Evaluation(
        metrics={}, stats=stats, class_table=[row] * 60, class_names=["cat"], confusion=None, curves=None
    )
    args = argparse.Namespace(
        gt=Path("gt.json"), dt=Path("dt.json"), iou_type="bbox", conf_threshold=0.25, iou_threshold=0.5
    )
    before, after = report_pages(evaluation, args, ["ECE = 0.1"], "3 images; files read in 0.01 s")
    assert [title for title, _ in before] == ["objdet eval: summary", "per class", "per class"]
    summary = before[0][1]
    assert summary[:2] == ["ground truth: gt.json", "detections:   dt.json"]
    assert (
        summary[3] == "COCO bbox evaluation"
        and summary[4].endswith("= 0.500")
        and summary[15].endswith("= 0.610")
    )
    assert summary[-3:] == ["ECE = 0.1", "", "3 images; files read in 0.01 s"]
    first, second = before[1][1], before[2][1]
    assert first[0].startswith("class") and second[0] == first[0] and len(first) + len(second) == 60 + 4
    assert after == []


def test_a_failed_report_leaves_no_file(tmp_path: Path) -> None:
    from objdet.cli import ReportPdf

    path = tmp_path / "report.pdf"
    with pytest.raises(RuntimeError), ReportPdf(path, "t") as pdf:
        pdf.add_text([("page", ["text"])])
        raise RuntimeError("a figure failed")
    assert list(tmp_path.iterdir()) == []


def test_report_into_a_directory_is_an_error(tmp_path: Path) -> None:
    code, out, err = run("eval", "--demo", "--report", str(tmp_path))
    assert code == 2 and out == ""
    assert err == f"objdet: error: --report: {tmp_path} is a directory, expected a file name (report.pdf)\n"
