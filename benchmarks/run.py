"""Every benchmark in one run: a table of objdet's time against each reference measured in the same run.

    python benchmarks/run.py [--quick] [--only NAME ...] [--markdown FILE]

(``nox -s bench`` runs it with the reference libraries installed and writes
``benchmarks/results.md``, which benchmarks/README.md and the docs' benchmarks page show.)

Protocol: every module named in ``MODULES`` is a script in this folder that stays runnable on
its own and exposes ``run(quick: bool) -> list[dict]``. It prints its own details and returns
one dict per comparison with the keys of :data:`ROW_KEYS`:

* ``benchmark``: what was measured (data size, what is timed);
* ``objdet_s``: objdet's time in seconds;
* ``reference``: the reference implementation (library, version, what is timed);
* ``reference_s``: the reference's time in seconds, measured in the same run on the same
  data, or ``None`` when the reference is not installed;
* ``note``: agreement of the results (differences, bounds) or anything else worth saying.

``quick`` means sizes small enough for a smoke test (seconds), not for figures. Adding a
benchmark is one line: its module name in ``MODULES``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent

#: Benchmark modules (files in this folder), in the order they run.
MODULES = ["box_iou", "coco_bbox", "coco_segm", "coco_keypoints", "anomaly", "cli", "bootstrap", "first_use"]

ROW_KEYS = ("benchmark", "objdet_s", "reference", "reference_s", "note")

#: Libraries whose versions are recorded with the results.
LIBRARIES = ("torch", "torchmetrics", "pycocotools", "faster-coco-eval", "numpy")


@dataclass(frozen=True)
class Row:
    """One comparison: objdet against one reference, both timed in the same run."""

    module: str
    benchmark: str
    objdet_s: float
    reference: str
    reference_s: float | None
    note: str

    @property
    def ratio(self) -> float | None:
        """objdet's time divided by the reference's (below 1: objdet is faster)."""
        return None if self.reference_s is None else self.objdet_s / self.reference_s


def _positive_seconds(value: Any, key: str, module: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"benchmark {module!r}: row key {key!r} must be seconds > 0, got {value!r}")
    return float(value)


def to_row(module: str, raw: Any) -> Row:
    """Check one dict returned by a module's ``run()`` and make it a :class:`Row`."""
    if not isinstance(raw, dict):
        raise ValueError(f"benchmark {module!r}: run() must return dicts, got {type(raw).__name__}")
    missing = [k for k in ROW_KEYS if k not in raw]
    extra = sorted(set(raw) - set(ROW_KEYS))
    if missing or extra:
        raise ValueError(
            f"benchmark {module!r}: row keys must be {list(ROW_KEYS)}, missing {missing}, unexpected {extra}"
        )
    for key in ("benchmark", "reference", "note"):
        if not isinstance(raw[key], str):
            raise ValueError(f"benchmark {module!r}: row key {key!r} must be a str, got {raw[key]!r}")
    reference_s = raw["reference_s"]
    return Row(
        module=module,
        benchmark=raw["benchmark"],
        objdet_s=_positive_seconds(raw["objdet_s"], "objdet_s", module),
        reference=raw["reference"],
        reference_s=None if reference_s is None else _positive_seconds(reference_s, "reference_s", module),
        note=raw["note"],
    )


def load(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` by path (the folder is not a package)."""
    path = HERE / f"{name}.py"
    if not path.is_file():
        raise ValueError(f"no benchmark module {name!r}: expected the file {path.name} next to run.py")
    spec = importlib.util.spec_from_file_location(f"objdet_benchmarks_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise ValueError(f"benchmark module {name!r} has no run(quick: bool) -> list[dict]")
    return module


def run_all(names: list[str], quick: bool) -> list[Row]:
    rows: list[Row] = []
    for name in names:
        print(f"\n===== {name} {'(quick)' if quick else ''}", flush=True)
        start = time.perf_counter()
        raw_rows = load(name).run(quick=quick)
        if not isinstance(raw_rows, list) or not raw_rows:
            raise ValueError(
                f"benchmark {name!r}: run() must return a non-empty list of dicts, got {raw_rows!r}"
            )
        rows += [to_row(name, raw) for raw in raw_rows]
        print(f"===== {name} done in {time.perf_counter() - start:.1f} s", flush=True)
    return rows


def _seconds(s: float | None) -> str:
    if s is None:
        return "n/a"
    return f"{s:#.4g} s" if s >= 0.1 else f"{1e3 * s:#.4g} ms"  # 4 significant digits


def _ratio(row: Row) -> str:
    return "n/a" if row.ratio is None else f"{row.ratio:.3g}"


def _speedup(row: Row) -> str:
    return "n/a" if row.ratio is None else f"{1 / row.ratio:.3g}x"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> str:
    """CPU, usable cores, torch threads, GPU and library versions, in one line."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    versions = []
    for lib in LIBRARIES:
        try:
            versions.append(f"{lib} {version(lib)}")
        except PackageNotFoundError:
            versions.append(f"{lib} not installed")
    return (
        f"{_cpu_model()}, {cores} usable cores, {torch.get_num_threads()} torch threads, {gpu}; "
        f"Python {platform.python_version()}, {', '.join(versions)}"
    )


def _load() -> str:
    if not hasattr(os, "getloadavg"):
        return "n/a"
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def format_text(rows: list[Row]) -> str:
    """The table for the terminal (each row's note on the line below it)."""
    header = ("benchmark", "objdet", "reference, same run", "reference", "objdet/ref", "speed-up")
    cells = [
        (r.benchmark, _seconds(r.objdet_s), r.reference, _seconds(r.reference_s), _ratio(r), _speedup(r))
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    right = {1, 3, 4, 5}

    def line(values: tuple[str, ...]) -> str:
        padded = (
            v.rjust(w) if i in right else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        )
        return "  ".join(padded).rstrip()

    out = [line(header), "  ".join("-" * w for w in widths)]
    for row, c in zip(rows, cells, strict=True):
        out += [line(c), f"    {row.note}"] if row.note else [line(c)]
    return "\n".join(out)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def format_markdown(
    rows: list[Row], machine: str, command: str, date: str, load: str, quick: bool = False
) -> str:
    """The table as Markdown (no heading, so it can be included under any heading)."""
    lines = [
        f"<!-- written by {command}; regenerate instead of editing -->",
        "",
        f"Run of {date}: `{command}`{' (quick sizes: a smoke test, not figures)' if quick else ''}. "
        f"Machine: {_md(machine)}. Load average (1, 5, 15 min) at the start: {load}.",
        "",
        "Ratio = objdet's time / the reference's time in the same run (below 1: objdet is faster).",
        "",
        "| benchmark | objdet | reference, same run | reference time | objdet / reference | speed-up "
        "| note |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    lines += [
        f"| {_md(r.benchmark)} | {_seconds(r.objdet_s)} | {_md(r.reference)} | {_seconds(r.reference_s)} "
        f"| {_ratio(r)} | {_speedup(r)} | {_md(r.note)} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test, not figures")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", choices=MODULES, help="run only these benchmarks"
    )
    parser.add_argument("--markdown", metavar="FILE", type=Path, help="also write the table as Markdown")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[Row]:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    names = [m for m in MODULES if args.only is None or m in args.only]
    load = _load()
    date = dt.date.today().isoformat()
    rows = run_all(names, args.quick)
    machine = machine_description()
    table = format_text(rows)
    print(f"\n{machine}\nload average (1, 5, 15 min) at the start: {load}, at the end: {_load()}\n")
    print(table)
    if args.markdown is not None:
        command = shlex.join(["python", "benchmarks/run.py", *argv])
        text = format_markdown(rows, machine, command, date, load, args.quick)
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.markdown.with_name(args.markdown.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.markdown)  # nothing half-written
        print(f"\nwritten: {args.markdown}")
    return rows


if __name__ == "__main__":
    main()
