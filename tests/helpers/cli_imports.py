"""What ``objdet eval`` imports: runs of :func:`objdet.cli.main` in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Sequence


def imported_packages(runs: Sequence[Sequence[str]], packages: Iterable[str]) -> list[str]:
    """Which of ``packages`` a fresh Python has imported after ``main(argv)`` for each argv (each must
    return 0), sorted."""
    script = "import sys\nfrom objdet.cli import main\n"
    script += "".join(f"assert main({list(argv)!r}) == 0\n" for argv in runs)
    script += f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(packages)!r}))\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return ast.literal_eval(proc.stdout.strip().splitlines()[-1])  # the printed list of names
