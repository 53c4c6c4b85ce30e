"""Fixtures of the metric tests."""

from __future__ import annotations

import pytest

from objdet.training.metrics import mean_ap


@pytest.fixture(params=["compiled", "torch"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once per COCO engine: the compiled CPU loops and the torch kernels (CUDA's path).

    Modules opt in with ``pytestmark = pytest.mark.usefixtures("engine")``; every
    ``MeanAveragePrecision`` (and ``ClasswiseAP``) created without ``engine=`` then uses it.
    """
    monkeypatch.setattr(mean_ap, "DEFAULT_ENGINE", request.param)
    return request.param
