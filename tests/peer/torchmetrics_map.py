"""Run torchmetrics' own MeanAveragePrecision test module against objdet, with only the import changed.

Not collected by pytest (no ``test_`` prefix): it needs a torchmetrics git checkout, which this
repository does not carry (the test module is torchmetrics', Apache-2.0, and is not copied here).

Usage::

    python tests/peer/torchmetrics_map.py --torchmetrics /path/to/torchmetrics.git --rev v1.9.0 \
        [-- extra pytest args]

It builds, in a temporary directory outside the repository:

* ``tests/unittests/`` from ``git show <rev>:tests/unittests/...`` (the package's ``__init__``,
  ``conftest``, ``_helpers`` and ``detection/__init__``, and ``detection/test_map.py`` with its
  line ``from torchmetrics.detection.mean_ap import MeanAveragePrecision`` replaced by
  ``from objdet.training.metrics import MeanAveragePrecision``; with ``--functional`` also its
  import of torchmetrics' functional ``mean_average_precision`` (which needs torchvision) by
  objdet's; nothing else is changed);
* ``tests/_data/detection/`` with the three COCO API files of ``tests/fixtures/cocoapi``;

then runs pytest there with ``src/`` of this repository first on ``PYTHONPATH``. torchmetrics'
helpers import ``cachier``; install it in the environment (or pass ``--extra-path`` to a
directory that has it). Prints pytest's summary; the exit status is pytest's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.helpers.cocoapi_files import unpack  # noqa: E402

HELPERS = (
    "tests/unittests/__init__.py",
    "tests/unittests/conftest.py",
    "tests/unittests/_helpers/__init__.py",
    "tests/unittests/_helpers/testers.py",
    "tests/unittests/_helpers/wrappers.py",
    "tests/unittests/detection/__init__.py",
)
MODULE = "tests/unittests/detection/test_map.py"
IMPORT_TM = "from torchmetrics.detection.mean_ap import MeanAveragePrecision"
IMPORT_OBJDET = "from objdet.training.metrics import MeanAveragePrecision"
FUNCTIONAL_TM = "from torchmetrics.functional.detection.map import mean_average_precision"
FUNCTIONAL_OBJDET = "from objdet.training.metrics import mean_average_precision"


def _show(git_dir: str, rev: str, path: str) -> str:
    return subprocess.run(
        ["git", "-C", git_dir, "show", f"{rev}:{path}"], check=True, capture_output=True, text=True
    ).stdout


def build(git_dir: str, rev: str, root: Path, functional: bool = False) -> Path:
    for path in HELPERS:
        out = root / path
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(_show(git_dir, rev, path))
    source = _show(git_dir, rev, MODULE)
    if source.count(IMPORT_TM) != 1:
        raise SystemExit(f"{MODULE} at {rev} does not import MeanAveragePrecision as expected")
    source = source.replace(IMPORT_TM, IMPORT_OBJDET)
    if functional:  # also torchmetrics' functional form (it needs torchvision) by objdet's
        if source.count(FUNCTIONAL_TM) != 1:
            raise SystemExit(f"{MODULE} at {rev} does not import mean_average_precision as expected")
        source = source.replace(FUNCTIONAL_TM, FUNCTIONAL_OBJDET)
    (root / MODULE).write_text(source)
    unpack(root / "tests" / "_data" / "detection")
    return root / "tests"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torchmetrics", required=True, help="a torchmetrics git directory (bare or not)")
    parser.add_argument("--rev", default="v1.9.0", help="tag or commit of torchmetrics (default v1.9.0)")
    parser.add_argument(
        "--extra-path", default="", help="more entries for PYTHONPATH (e.g. where cachier is)"
    )
    parser.add_argument(
        "--functional", action="store_true", help="also import objdet's functional mean_average_precision"
    )
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="objdet-peer-") as tmp:
        tests = build(args.torchmetrics, args.rev, Path(tmp), args.functional)
        path = [str(REPO / "src"), str(tests), *filter(None, args.extra_path.split(os.pathsep))]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "unittests/detection/test_map.py",
            "-q",
            "-rfEs",
            "-p",
            "no:cacheprovider",
            *args.pytest_args,
        ]
        return subprocess.run(cmd, cwd=tests, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main())
