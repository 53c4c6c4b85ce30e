"""The first run after an install: compile accumulate's kernels in a second process, meanwhile.

numba compiles objdet's kernels on their first call after an install or an upgrade (and
caches them on disk): about 22 s on a 2-core machine, a third of it for accumulate's. A run
calls them in order: the matching kernels first (an update of
:class:`~objdet.training.metrics.MeanAveragePrecision`, the matching of ``objdet eval``),
accumulate's last (``compute()``). :func:`start_if_cold` tells from a trivial kernel whether
the cache is empty and, if so, starts a second Python process that compiles accumulate's
kernels on the argument types every caller gives them (:func:`compile_accumulate_kernels`)
while the run compiles the matching ones; the run then loads them from the cache when it gets
there (``objdet eval --demo``: 22-24 s -> 14-15 s here). Should the helper be late or fail,
the run compiles them itself, as without it. The helper is stopped if the run's process ends
first; its output is discarded. (A run stopped between the probe and the real kernels leaves
the probe cached: the next run compiles the rest without a helper or a notice.)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "can_start_python",
    "compile_accumulate_kernels",
    "python_command",
    "start_if_cold",
    "stop_process",
]

_cold: bool | None = None  # what the probe said, once per process


def can_start_python() -> bool:
    """Whether ``sys.executable`` is a Python that can be started (not so in a frozen application or
    an embedding program such as uWSGI)."""
    name = os.path.basename(sys.executable or "").lower()
    return name.startswith(("python", "pypy")) and not getattr(sys, "frozen", False)


#: the start of a second process: the current directory off ``sys.path`` (a local ``objdet/`` or
#: ``matplotlib.py`` must not shadow the real ones), this objdet's root (``argv[1]``) at its end
#: when it is not on it already (not through ``PYTHONPATH``: that comes before the standard library)
_BOOT = (
    "import sys\n"
    "if sys.path[:1] == ['']:\n    del sys.path[0]\n"
    "if sys.argv[1] not in sys.path:\n    sys.path.append(sys.argv[1])\n"
)


def python_command(code: str) -> list[str]:
    """``[sys.executable, "-c", ...]`` running ``code`` with this very objdet importable, wherever it
    was imported from."""
    import objdet

    root = str(Path(objdet.__file__).resolve().parents[1])
    return [sys.executable, "-c", _BOOT + code, root]


def stop_process(process: Any) -> None:
    """Stop a second process of objdet's (a ``subprocess.Popen``) if it still runs, and reap it: terminated,
    killed if it has not ended 10 s later."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except Exception:
            process.kill()
            process.wait()


def _first_rank() -> bool:
    """Whether this process is the first of its DDP job (or not under DDP): only it starts a helper."""
    if os.environ.get("LOCAL_RANK", "0") != "0":
        return False
    dist = sys.modules.get("torch.distributed")
    try:  # mp.spawn sets no LOCAL_RANK: ask the process group when there is one
        return not (
            dist is not None and dist.is_available() and dist.is_initialized() and dist.get_rank() != 0
        )
    except Exception:
        return True


def start_if_cold() -> bool:
    """Whether numba's cache lacked objdet's kernels when this process first asked (then the helper
    was started).

    The first call runs ``objdet.ops.coco_cpu.cache_probe`` (loaded from the cache in
    milliseconds, or compiled in a moment); later calls return its answer. False under
    ``NUMBA_DISABLE_JIT=1``, where nothing compiles. Under DDP only the first rank starts a
    helper (the ranks share the cache).
    """
    global _cold
    if _cold is None:
        from objdet.ops.coco_cpu import cache_probe

        cache_probe(0)
        stats = getattr(cache_probe, "stats", None)  # None with NUMBA_DISABLE_JIT=1
        _cold = stats is not None and bool(stats.cache_misses)
        if _cold and _first_rank() and can_start_python():
            _start_helper()
    return _cold


def _start_helper() -> None:
    import atexit
    import subprocess
    import threading

    code = "from objdet.functional.compile_helper import compile_accumulate_kernels as c; c()"
    try:
        helper = subprocess.Popen(
            python_command(code),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except (OSError, ValueError):  # no second process: the run compiles everything itself
        return
    threading.Thread(target=helper.wait, daemon=True).start()  # reaped when it ends, not at exit
    atexit.register(stop_process, helper)


def compile_accumulate_kernels() -> None:
    """The helper's job: :func:`~objdet.functional.coco_cpu.coco_accumulate_np` on a tiny state of the
    dtypes every caller's state has (it converts its inputs to them; the number of IoU thresholds,
    area ranges and maxDets does not change the compiled signature)."""
    from objdet.functional.coco_cpu import coco_accumulate_np
    from objdet.functional.coco_params import AREA_RANGES, default_iou_thresholds, default_rec_thresholds

    n, n_thr, n_areas = 3, len(default_iou_thresholds()), len(AREA_RANGES)
    flags = np.zeros((n, (n_thr * n_areas + 7) // 8), np.uint8)
    labels, gt_counts = np.zeros(n, np.int64), np.ones((n, n_areas), np.int64)
    coco_accumulate_np(
        np.zeros(n), labels, labels.copy(), flags, flags.copy(), labels.copy(), gt_counts,
        n_thr, np.array(default_rec_thresholds()), [1, 10, 100], full=False,
    )  # fmt: skip
