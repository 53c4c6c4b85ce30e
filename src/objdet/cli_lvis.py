"""``objdet eval --lvis GT.json DT.json``: LVIS federated evaluation of files (the LVIS API's numbers).

Reads the LVIS annotation file with :func:`objdet.io.load_lvis_gt` and the results with
:func:`objdet.io.load_lvis_dt`, runs :class:`~objdet.training.metrics.LVISMeanAveragePrecision`
batch by batch (the compiled engine on the CPU, torch kernels with ``--device cuda``) and
prints the LVIS API's summary. ``--json`` / ``--out`` write the torchmetrics-style keys
(float64), the per-class AP and AR@300 by category id, and ``lvis_results``: the LVIS API's
``results`` dict (AP, AP50, AP75, APs, APm, APl, APr, APc, APf, AR@300, ARs@300, ARm@300,
ARl@300), float64. The COCO-only options (TIDE, bootstrap, slices, calibration, F-beta, the
report, the confusion matrix and its plots) are not available with ``--lvis``.
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from typing import IO, Any

#: the options of ``objdet eval`` that --lvis does not take, with their default values
_COCO_ONLY = {
    "tide": False,
    "bootstrap": None,
    "slices": None,
    "calibration": False,
    "fbeta": None,
    "report": None,
}


def format_lvis_summary(results: dict[str, float], iou_type: str) -> str:
    """The LVIS API's ``print_results`` lines, one per number of ``results``."""
    lines = []
    for key, value in results.items():
        title = "Average Precision  (AP)" if key.startswith("AP") else "Average Recall     (AR)"
        iou = f"{int(key[2:]) / 100:0.2f}" if len(key) > 2 and key[2].isdigit() else "0.50:0.95"
        group = key[2] if len(key) > 2 and key[2] in "rcf" else "all"
        area = {"s": "small", "m": "medium", "l": "large"}.get(key[2] if len(key) > 2 else "", "all")
        lines.append(
            f" {title} @[ IoU={iou:<9} | area={area:>6s} | maxDets=300 catIds={group:>3s}] = {value:0.3f}"
        )
    return f"LVIS {iou_type}:\n" + "\n".join(lines)


def run_lvis(args: argparse.Namespace, device: Any, stdout: IO[str], stderr: IO[str]) -> int:
    """``objdet eval --lvis``: returns the exit code (errors are the CLI's InputError)."""
    from objdet.cli import InputError, Progress, _printer, _read_file, write_json

    for name, default in _COCO_ONLY.items():
        if getattr(args, name, default) != default:
            raise InputError(f"--{name}: not available with --lvis (COCO evaluation only)")
    say = _printer(stdout, args.quiet)
    notes: list[str] = []
    load = partial(_read_file, notes=notes)
    t0 = time.perf_counter()
    types = (args.iou_type,) if args.iou_type == "bbox" else ("bbox", "segm")

    from objdet.io import load_lvis_dt, load_lvis_gt
    from objdet.training.metrics import LVISMeanAveragePrecision

    gt = load(lambda: load_lvis_gt(args.gt, iou_type=types, device=device), args.gt)
    if not gt.category_ids:
        raise InputError(f"{args.gt}: the LVIS ground truth has no 'categories': nothing to evaluate")
    skip = args.skip_unknown_categories
    preds = load(lambda: load_lvis_dt(args.dt, gt, device=device, skip_unknown_categories=skip), args.dt)
    for note in notes:
        print(f"objdet: warning: {note}", file=stderr)
    t_load = time.perf_counter() - t0
    metric = LVISMeanAveragePrecision(
        box_format=gt.box_format,
        iou_type=args.iou_type,
        frequencies=gt.frequencies,
        class_metrics=True,
    )
    metric.warn_on_many_detections = False  # the 300-per-image cap is the protocol
    if device is not None:
        metric.to(device)
    n = len(gt.target)
    bar = Progress(n, None if args.quiet or not stderr.isatty() else stderr)
    try:
        for start in range(0, n, args.batch_size):
            metric.update(preds[start : start + args.batch_size], gt.target[start : start + args.batch_size])
            bar.update(min(start + args.batch_size, n))
        results = metric.lvis_results()
        out = metric.compute()
    except ValueError as err:
        raise InputError(f"{args.gt}, {args.dt}: {err}") from None
    finally:
        bar.close()
    t_eval = time.perf_counter() - t0 - t_load
    classes = out["classes"].reshape(-1).long().cpu().tolist()
    metrics: dict[str, Any] = {
        name: value for name, value in zip(_stat_names(), results.values(), strict=True)
    }
    metrics["map_per_class"] = out["map_per_class"].reshape(-1).double().cpu().tolist()
    metrics["mar_300_per_class"] = out["mar_300_per_class"].reshape(-1).double().cpu().tolist()
    metrics["classes"] = classes
    names = dict(zip(gt.category_ids, gt.category_names, strict=True))
    metrics["class_names"] = [names.get(c, str(c)) for c in classes]
    metrics["iou_type"] = args.iou_type
    metrics["n_images"] = n
    metrics["lvis_results"] = results
    metrics["files"] = {"gt": str(args.gt), "dt": str(args.dt)}
    say(format_lvis_summary(results, args.iou_type))
    written = []
    if args.json is not None:
        write_json(args.json, metrics)
        written.append(args.json)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        write_json(args.out / "metrics.json", metrics)
        written.append(args.out / "metrics.json")
    say("")
    say(f"{n} images; files read in {t_load:.2f} s, evaluated in {t_eval:.2f} s")
    for path in written:
        say(f"wrote {path}")
    return 0


def _stat_names() -> tuple[str, ...]:
    from objdet.functional.lvis import lvis_stat_names

    return lvis_stat_names(300)
