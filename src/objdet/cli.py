"""The ``objdet`` command line: evaluate COCO JSON files.

``objdet eval GT.json DT.json`` reads a COCO annotation file and a COCO results file, runs
:class:`~objdet.training.metrics.MeanAveragePrecision` (pycocotools' numbers) and
:class:`~objdet.training.metrics.ConfusionMatrix` on them, prints the COCO summary and a
per-class table, and on request writes the metrics as JSON (``--json``) and the plots plus the
JSON into a directory (``--out``). ``objdet eval --demo`` does the same on the small data set
shipped in the package. ``python -m objdet`` is the same program.

Bad input (a missing file, invalid JSON, a missing key, a detection whose ``image_id`` or
``category_id`` is not in the ground truth, a malformed ``bbox``) gives one line on stderr
and exit code 2; every file is written through a temporary name and renamed, so nothing is
left half-written.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

import torch
from torch import Tensor

from objdet.functional.coco import coco_stat_names, per_class_ap_ar
from objdet.io import CocoGroundTruth, load_coco_dt, load_coco_gt

EXIT_BAD_INPUT = 2
_SUMMARY_ROWS = (
    ("Average Precision", "AP", "0.50:0.95", "all", 2),
    ("Average Precision", "AP", "0.50", "all", 2),
    ("Average Precision", "AP", "0.75", "all", 2),
    ("Average Precision", "AP", "0.50:0.95", "small", 2),
    ("Average Precision", "AP", "0.50:0.95", "medium", 2),
    ("Average Precision", "AP", "0.50:0.95", "large", 2),
    ("Average Recall", "AR", "0.50:0.95", "all", 0),
    ("Average Recall", "AR", "0.50:0.95", "all", 1),
    ("Average Recall", "AR", "0.50:0.95", "all", 2),
    ("Average Recall", "AR", "0.50:0.95", "small", 2),
    ("Average Recall", "AR", "0.50:0.95", "medium", 2),
    ("Average Recall", "AR", "0.50:0.95", "large", 2),
)
_MAX_DETS = (1, 10, 100)
_STAT_KEYS = coco_stat_names(_MAX_DETS)


class InputError(ValueError):
    """Bad command-line input: reported as one line with exit code 2."""


# ----------------------------------------------------------------------------- evaluation
@dataclass
class Evaluation:
    """Everything ``objdet eval`` computed, in plain Python (JSON-ready) and tensors for the plots."""

    metrics: dict[str, Any]
    stats: list[float]
    class_table: list[dict[str, Any]]
    class_names: list[str]
    confusion: Tensor
    curves: Any


class Progress:
    """A one-line progress bar on a terminal, shown only once a run has lasted ``delay`` seconds."""

    def __init__(self, total: int, stream: IO[str] | None, delay: float = 1.0) -> None:
        self.total, self.stream, self.delay = total, stream, delay
        self.start = time.perf_counter()
        self.last = -math.inf
        self.shown = False

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if self.stream is None or now - self.start < self.delay or now - self.last < 0.1:
            return
        self.last, self.shown = now, True
        width = 30
        filled = int(width * done / max(self.total, 1))
        rate = done / (now - self.start)
        self.stream.write(
            f"\revaluating [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} images"
            f" ({rate:,.0f}/s)"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.shown and self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()


def _plain(value: Any) -> Any:
    """JSON-ready Python values: tensors to numbers/lists, NaN to None."""
    if isinstance(value, Tensor):
        value = value.detach().cpu().tolist()
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def evaluate(
    gt: CocoGroundTruth,
    preds: Sequence[dict[str, Tensor]],
    iou_type: str = "bbox",
    class_names: Sequence[str] | None = None,
    iou_threshold: float = 0.5,
    conf_threshold: float = 0.25,
    batch_size: int = 64,
    plots: bool = True,
    progress: Callable[[int], None] | None = None,
) -> Evaluation:
    """Run MeanAveragePrecision and ConfusionMatrix over loaded COCO data (labels contiguous)."""
    from objdet.training.metrics import ConfusionMatrix, MeanAveragePrecision

    if gt.labels != "contiguous":
        raise ValueError("`gt` must be loaded with labels='contiguous'")
    names = list(class_names) if class_names is not None else list(gt.category_names)
    n_classes = len(gt.category_ids)
    device = gt.target[0]["labels"].device if len(gt.target) else torch.device("cpu")
    box_format: Any = gt.box_format
    mean_ap = MeanAveragePrecision(box_format=box_format, iou_type=iou_type, class_metrics=True)  # type: ignore[arg-type]
    confusion = ConfusionMatrix(
        num_classes=max(n_classes, 1),
        iou_threshold=iou_threshold,
        conf_threshold=conf_threshold,
        box_format=box_format,
    )
    mean_ap.to(device)
    confusion.to(device)
    n = len(gt.target)
    for start in range(0, n, batch_size):
        target = gt.target[start : start + batch_size]
        batch = preds[start : start + batch_size]
        mean_ap.update(batch, target)
        if "bbox" in gt.iou_type:
            confusion.update(batch, target)
        if progress is not None:
            progress(min(start + batch_size, n))

    stats64, tables = mean_ap.coco_eval(full=False)
    result = mean_ap.compute()
    classes = result["classes"].long().cpu().reshape(-1)  # 0-d for one class (squeezed by Metric)
    ap, ar = per_class_ap_ar(tables, list(_MAX_DETS))
    thresholds = torch.tensor(mean_ap.iou_thresholds, dtype=torch.float64)
    at = {t: int((thresholds - t).abs().argmin()) for t in (0.5, 0.75)}
    ap50, _ = per_class_ap_ar(tables, list(_MAX_DETS), iou_index=at[0.5])
    ap75, _ = per_class_ap_ar(tables, list(_MAX_DETS), iou_index=at[0.75])
    matrix = confusion.compute().cpu()
    pr = confusion.per_class_metrics()
    table_classes = tables.classes.long().cpu().tolist()
    class_table = []
    for label in range(n_classes):
        row: dict[str, Any] = {"class": names[label], "category_id": gt.category_ids[label]}
        if label in table_classes:
            k = table_classes.index(label)
            row.update(AP=ap[k].item(), AP50=ap50[k].item(), AP75=ap75[k].item(), AR100=ar[k].item())
        else:
            row.update(AP=-1.0, AP50=-1.0, AP75=-1.0, AR100=-1.0)
        row.update(
            n_gt=int(matrix[label].sum()),
            precision=pr["precision"][label].item(),
            recall=pr["recall"][label].item(),
            f1=pr["f1"][label].item(),
        )
        class_table.append(row)

    metrics = {key: _plain(value) for key, value in result.items() if key != "classes"}
    # The JSON carries pycocotools' float64 numbers (compute() rounds them to float32).
    for key, value in zip(_STAT_KEYS, stats64.cpu().tolist(), strict=True):
        metrics[key] = value
    by_label = dict(zip(table_classes, zip(ap.tolist(), ar.tolist(), strict=True), strict=True))
    metrics["map_per_class"] = [by_label.get(c, (-1.0, -1.0))[0] for c in classes.tolist()]
    metrics["mar_100_per_class"] = [by_label.get(c, (-1.0, -1.0))[1] for c in classes.tolist()]
    metrics["classes"] = [gt.category_ids[c] for c in classes.tolist()]
    metrics["class_names"] = [names[c] for c in classes.tolist()]
    metrics["iou_type"] = iou_type
    metrics["n_images"] = n
    metrics["per_class"] = _plain(class_table)
    if "bbox" in gt.iou_type:
        metrics["confusion_matrix"] = {
            "iou_threshold": iou_threshold,
            "conf_threshold": conf_threshold,
            "labels": [*names, "background"],
            "rows": "ground truth",
            "columns": "predictions",
            "matrix": matrix.tolist(),
        }
    curves = mean_ap.curves() if plots else None  # at IoU 0.5 (the first threshold when 0.5 is absent)
    return Evaluation(
        metrics=metrics,
        stats=stats64.cpu().tolist(),
        class_table=class_table,
        class_names=names,
        confusion=matrix,
        curves=curves,
    )


# ----------------------------------------------------------------------------- output
def format_summary(stats: Sequence[float], iou_type: str) -> str:
    """pycocotools' twelve summary lines."""
    lines = [f"COCO {iou_type} evaluation"]
    for (title, short, iou, area, det), value in zip(_SUMMARY_ROWS, stats, strict=True):
        where = f"IoU={iou:<9} | area={area:>6} | maxDets={_MAX_DETS[det]:>3}"
        lines.append(f" {title:<18} ({short}) @[ {where} ] = {value:0.3f}")
    return "\n".join(lines)


def format_class_table(rows: Sequence[dict[str, Any]], conf_threshold: float) -> str:
    """One line per class: AP, AP50, AP75, AR100, and precision/recall/F1 at the confidence threshold."""
    width = max([5, *(len(str(r["class"])) for r in rows)])

    def num(v: float) -> str:
        return "    -" if v is None or math.isnan(v) or v < 0 else f"{v:5.3f}"

    head = (
        f"{'class':<{width}}  {'id':>5}  {'GT':>6}  {'AP':>5}  {'AP50':>5}  {'AP75':>5}  {'AR100':>5}"
        f"  {'P':>5}  {'R':>5}  {'F1':>5}   (P/R/F1 at score >= {conf_threshold:g})"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['class']:<{width}}  {r['category_id']:>5}  {r['n_gt']:>6}  {num(r['AP'])}  {num(r['AP50'])}"
            f"  {num(r['AP75'])}  {num(r['AR100'])}"
            f"  {num(r['precision'])}  {num(r['recall'])}  {num(r['f1'])}"
        )
    return "\n".join(lines)


def _atomic_write(path: Path, write: Callable[[IO[Any]], object], binary: bool = False) -> None:
    """Write through a temporary file in the same directory, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as handle:
            write(handle)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, metrics: dict[str, Any]) -> None:
    _atomic_write(path, lambda f: f.write(json.dumps(metrics, indent=1, allow_nan=False) + "\n"))


def write_plots(out: Path, evaluation: Evaluation, conf_threshold: float, iou_threshold: float) -> list[Path]:
    """The confusion matrix (counts and normalised by GT), PR curves, F1-confidence and AP bars as PNGs."""
    from objdet.plotting.detection import plot_ap_bars, plot_confusion_matrix, plot_detection_curves

    names = evaluation.class_names
    details = f"IoU >= {iou_threshold:g}, score >= {conf_threshold:g}"
    figures = {
        "confusion_matrix.png": plot_confusion_matrix(evaluation.confusion, names, details=details)[0],
        "confusion_matrix_normalized.png": plot_confusion_matrix(
            evaluation.confusion, names, normalize="true", details=details
        )[0],
    }
    if evaluation.curves is not None:
        figures["pr_curves.png"] = plot_detection_curves(evaluation.curves, "pr", names)[0]
        figures["f1_confidence.png"] = plot_detection_curves(evaluation.curves, "f1", names)[0]
    rows = [r for r in evaluation.class_table if r["AP"] >= 0]
    figures["ap_per_class.png"] = plot_ap_bars(
        torch.tensor([r["AP"] for r in rows], dtype=torch.float64),
        [r["class"] for r in rows],
        title="AP@[.50:.95] per class",
    )[0]
    written = []
    for name, fig in figures.items():
        path = out / name
        _atomic_write(path, partial(fig.savefig, format="png", dpi=110), binary=True)
        written.append(path)
    return written


# ----------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="objdet", description="Detection metrics, exact and fast.")
    commands = parser.add_subparsers(dest="command", required=True)
    ev = commands.add_parser(
        "eval",
        help="evaluate a COCO results file against a COCO annotation file",
        description="COCO evaluation (pycocotools' numbers) plus a detection confusion matrix.",
    )
    ev.add_argument("gt", nargs="?", type=Path, help="COCO annotation file (ground truth)")
    ev.add_argument("dt", nargs="?", type=Path, help="COCO results file (detections)")
    ev.add_argument("--demo", action="store_true", help="use the small data set shipped with objdet")
    ev.add_argument("--iou-type", choices=("bbox", "segm"), default="bbox")
    ev.add_argument("--out", type=Path, help="directory for metrics.json and the plots")
    ev.add_argument("--json", type=Path, help="write the metrics as JSON to this file")
    ev.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ev.add_argument("--class-names", nargs="+", metavar="NAME", help="names for the categories, in id order")
    ev.add_argument("--iou-threshold", type=float, default=0.5, help="confusion matrix IoU (0.5)")
    ev.add_argument("--conf-threshold", type=float, default=0.25, help="confusion matrix min score (0.25)")
    ev.add_argument("--batch-size", type=int, default=64, help="images per update (64)")
    ev.add_argument("--no-plots", action="store_true", help="with --out: write only metrics.json")
    ev.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    return parser


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device: expected cpu or cuda, got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available")
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"--device: expected cpu or cuda, got {name!r}")
    return device


def _run_eval(args: argparse.Namespace, stdout: IO[str], stderr: IO[str]) -> int:
    if args.demo:
        if args.gt is not None or args.dt is not None:
            raise InputError("--demo takes no GT/DT files")
        from objdet.data import demo_files

        args.gt, args.dt = demo_files()
    elif args.gt is None or args.dt is None:
        raise InputError("expected GT.json and DT.json (or --demo)")
    if not 0.0 < args.iou_threshold <= 1.0:
        raise InputError(f"--iou-threshold: expected a value in (0, 1], got {args.iou_threshold}")
    if math.isnan(args.conf_threshold):
        raise InputError("--conf-threshold: expected a number, got nan")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out: {args.out} is a file, expected a directory")
    if args.json is not None and args.json.is_dir():
        raise InputError(f"--json: {args.json} is a directory, expected a file name")
    if args.batch_size < 1:
        raise InputError(f"--batch-size: expected a positive integer, got {args.batch_size}")
    device = _device(args.device)
    say = (lambda text: None) if args.quiet else (lambda text: print(text, file=stdout))
    t0 = time.perf_counter()
    types = (args.iou_type,) if args.iou_type == "bbox" else ("bbox", "segm")
    gt = _load(lambda: load_coco_gt(args.gt, iou_type=types, labels="contiguous", device=device), args.gt)
    if not gt.category_ids:
        raise InputError(f"{args.gt}: the COCO ground truth has no 'categories': nothing to evaluate")
    preds = _load(lambda: load_coco_dt(args.dt, gt, device=device), args.dt)
    if args.class_names is not None and len(args.class_names) != len(gt.category_ids):
        raise InputError(
            f"--class-names: expected {len(gt.category_ids)} names (one per category of {args.gt}), "
            f"got {len(args.class_names)}"
        )
    t_load = time.perf_counter() - t0
    bar = Progress(len(gt.target), None if args.quiet or not stderr.isatty() else stderr)
    plots = args.out is not None and not args.no_plots
    try:  # masks are decoded here (bad RLE, sizes of GT and results that differ): still bad input
        evaluation = evaluate(
            gt,
            preds,
            iou_type=args.iou_type,
            class_names=args.class_names,
            iou_threshold=args.iou_threshold,
            conf_threshold=args.conf_threshold,
            batch_size=args.batch_size,
            plots=plots,
            progress=bar.update,
        )
    except ValueError as err:
        raise InputError(f"{args.gt}, {args.dt}: {err}") from None
    finally:
        bar.close()
    t_eval = time.perf_counter() - t0 - t_load
    evaluation.metrics["files"] = {"gt": str(args.gt), "dt": str(args.dt)}
    say(format_summary(evaluation.stats, args.iou_type))
    say("")
    say(format_class_table(evaluation.class_table, args.conf_threshold))
    written = []
    if args.json is not None:
        write_json(args.json, evaluation.metrics)
        written.append(args.json)
    if args.out is not None:
        write_json(args.out / "metrics.json", evaluation.metrics)
        written.append(args.out / "metrics.json")
        if plots:
            written += write_plots(args.out, evaluation, args.conf_threshold, args.iou_threshold)
    say("")
    say(f"{len(gt.target)} images; loaded in {t_load:.2f} s, evaluated in {t_eval:.2f} s")
    for path in written:
        say(f"wrote {path}")
    return 0


def _load(read: Callable[[], Any], path: Path) -> Any:
    try:
        return read()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a JSON file") from None
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not a UTF-8 text file ({err.reason})") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: invalid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    except (ValueError, TypeError, KeyError) as err:
        raise InputError(f"{path}: {err}") from None


def main(
    argv: Sequence[str] | None = None, stdout: IO[str] | None = None, stderr: IO[str] | None = None
) -> int:
    """Entry point of ``objdet``; returns the exit code (0, or 2 for bad input)."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        return _run_eval(args, stdout, stderr)
    except InputError as err:
        message = " ".join(str(err).split())
        print(f"objdet: error: {message}", file=stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
