"""The README's promises: its Python example runs, its test command is the one CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_example_runs() -> None:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "README has no python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^nox -s tests lint typecheck\b", readme, re.M)
    assert "nox -s tests" in (ROOT / ".ci" / "run").read_text()


def test_readme_pictures_and_main_job_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert pictures, "README shows no picture"
    for path in pictures:
        data = (ROOT / path).read_bytes()
        assert data.startswith(b"\x89PNG"), path
    demo = re.search(r"^nox -s demo\b", readme, re.M)
    noxfile = (ROOT / "noxfile.py").read_text()
    assert demo and '"objdet", "eval", "--demo"' in noxfile
