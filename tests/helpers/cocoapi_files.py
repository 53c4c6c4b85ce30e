"""The COCO API's 100-image val2014 subset and fake results, unpacked from tests/fixtures/cocoapi."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "cocoapi"
GT = "instances_val2014_100.json"
BBOX = "instances_val2014_fakebbox100_results.json"
SEGM = "instances_val2014_fakesegm100_results.json"


def unpack(directory: Path, names: tuple[str, ...] = (GT, BBOX, SEGM)) -> dict[str, Path]:
    """Write the named JSON files into ``directory``; returns {name: path}."""
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in names:
        path = directory / name
        if not path.exists():
            with gzip.open(FIXTURES / f"{name}.gz", "rb") as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst)
        out[name] = path
    return out
