"""The figure worker of ``objdet eval --out``: the same PNGs as in-process drawing, and a fallback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from objdet import cli
from objdet.cli import (
    Diagnostics,
    Evaluation,
    FigureWorker,
    evaluate_arrays,
    evaluation_figures,
    save_figures,
)
from objdet.data import demo_files
from objdet.io.coco_arrays import read_dt_arrays, read_gt_arrays


@pytest.fixture(scope="module")
def demo_evaluation() -> Evaluation:
    gt_path, dt_path = demo_files()
    gt = read_gt_arrays(gt_path, iou_type=("bbox",))
    evaluation = evaluate_arrays(gt, read_dt_arrays(dt_path, gt), plots=True, bootstrap=True)
    assert evaluation.bootstrap is not None  # left out of what the worker receives
    return evaluation


def test_the_worker_writes_the_same_pngs_as_this_process(demo_evaluation: Evaluation, tmp_path: Path) -> None:
    diagnostics = Diagnostics(fbeta=2.0)
    here = save_figures(evaluation_figures(demo_evaluation, 0.25, 0.5, diagnostics), tmp_path / "here")
    worker = FigureWorker.start()
    assert worker is not None
    try:
        there = worker.render(demo_evaluation, 0.25, 0.5, diagnostics, tmp_path / "there")
    finally:
        worker.close()
    assert there is not None and [p.name for p in there] == [p.name for p in here]
    assert "f2_confidence.png" in {p.name for p in there}
    for a, b in zip(here, there, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_a_worker_that_fails_gives_none_and_leaves_nothing_behind(
    demo_evaluation: Evaluation, tmp_path: Path
) -> None:
    dead = FigureWorker.start()
    assert dead is not None
    dead._process.kill()
    dead._process.wait()
    assert dead.render(demo_evaluation, 0.25, 0.5, Diagnostics(), tmp_path / "dead") is None
    dead.close()

    failing = FigureWorker.start()  # drawing raises in the worker (a name too few): its reply says so
    assert failing is not None
    broken = type(demo_evaluation)(**{**vars(demo_evaluation), "class_names": ["only one"]})
    assert failing.render(broken, 0.25, 0.5, Diagnostics(), tmp_path / "failing") is None
    failing.close()
    assert not list((tmp_path / "failing").glob(".*.tmp"))  # no half-written file left

    idle = FigureWorker.start()  # never given a job (the run stopped): stopped at once, nothing written
    assert idle is not None
    idle.close()
    assert idle._process.returncode is not None


def _program(args: list[str]) -> subprocess.CompletedProcess:
    """``objdet`` as the command runs it (main() reads sys.argv), and what it imported itself."""
    script = (
        "import sys\n"
        f"sys.argv = ['objdet', *{args!r}]\n"
        "from objdet.cli import main\n"
        "code = main()\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'torch'}))\n"
        "sys.exit(code)\n"
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)


def test_the_command_draws_in_its_worker_and_falls_back_on_bad_input(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = _program(["eval", "--demo", "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"  # neither drawn nor imported here: by the worker
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 5
    assert [f"wrote {out / name}" for name in pngs] == sorted(
        line for line in proc.stdout.splitlines() if line.endswith(".png")
    )
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    proc = _program(["eval", str(bad), str(bad), "--out", str(tmp_path / "bad")])
    assert proc.returncode == 2 and "objdet: error:" in proc.stderr
    assert not (tmp_path / "bad").exists()


def test_the_run_draws_itself_when_its_worker_gives_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FigureWorker, "render", lambda self, *job: None)  # the worker never draws
    args = cli.build_parser().parse_args(["eval", "--demo", "-q", "--out", str(tmp_path)])
    assert cli._run_eval(args, sys.stdout, sys.stderr, figure_worker=True) == 0
    assert len(list(tmp_path.glob("*.png"))) == 5


def test_no_second_python_in_a_frozen_application(monkeypatch: pytest.MonkeyPatch) -> None:
    from objdet.functional import compile_helper

    assert compile_helper.can_start_python()
    monkeypatch.setattr(sys, "frozen", True, raising=False)  # PyInstaller and the like
    assert not compile_helper.can_start_python()
    assert FigureWorker.start() is None


def test_a_run_that_fails_late_writes_no_png(tmp_path: Path) -> None:
    # the second results file is missing: found out after the evaluation, before the figures
    out = tmp_path / "late"
    proc = _program(
        ["eval", "--demo", "--out", str(out), "--bootstrap", "20", "--compare", str(tmp_path / "no.json")]
    )
    assert proc.returncode == 2 and "objdet: error:" in proc.stderr, proc.stderr
    assert not list(out.glob("*.png")) and not list(out.glob(".*.tmp"))
