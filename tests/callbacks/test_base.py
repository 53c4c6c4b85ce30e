"""The shared callback machinery: figure routing, rank-zero drawing, the outputs contract, state, imports."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from matplotlib.figure import Figure
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import objdet.training
from objdet.plotting._common import new_figure
from objdet.training.callbacks import (
    DetectionVisualizationCallback,
    FigureCallback,
    LearningRateMonitorCallback,
    ValidationOutputsCallback,
    log_figure,
)
from objdet.training.callbacks._base import batch_images, figure_file_name, logger_kind

SRC = str(Path(objdet.training.__file__).resolve().parents[2])


def _figure() -> Figure:
    fig, ax = new_figure((2.0, 1.5))
    ax.plot([0, 1], [1, 0])
    return fig


class FakeWandb:
    """What a W&B logger offers to us: ``log_image(key, images, step)``."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def log_image(self, key: str, images: list[Any], step: int | None = None) -> None:
        self.calls.append({"key": key, "images": images, "step": step})


class FakeMlflow:
    """What an MLflow logger offers: ``run_id``, ``experiment.log_figure(run_id, figure, artifact_file)``."""

    def __init__(self) -> None:
        self.run_id = "run-123"
        self.calls: list[tuple[Any, ...]] = []
        self.experiment = SimpleNamespace(log_figure=lambda *args: self.calls.append(args))


def _trainer(tmp_path: Path, loggers: list[Any], rank0: bool = True) -> Any:
    return SimpleNamespace(
        loggers=loggers,
        global_step=7,
        current_epoch=2,
        default_root_dir=str(tmp_path / "root"),
        is_global_zero=rank0,
    )


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:4] == b"\x89PNG"


# -- routing ------------------------------------------------------------------------------------------
def test_logger_kind_by_capability(tmp_path: Path) -> None:
    assert logger_kind(FakeWandb()) == "wandb"
    assert logger_kind(FakeMlflow()) == "mlflow"
    assert logger_kind(TensorBoardLogger(str(tmp_path))) == "tensorboard"
    assert logger_kind(CSVLogger(str(tmp_path))) == "files"
    assert logger_kind(object()) == "files"


def test_figure_file_name() -> None:
    assert figure_file_name("val/detections", 3, 120) == "val_detections_epoch003_step000120.png"
    assert figure_file_name("a b//c?", 0, 0) == "a_b_c_epoch000_step000000.png"


def test_log_figure_routes_each_logger_by_type(tmp_path: Path) -> None:
    wandb, mlflow = FakeWandb(), FakeMlflow()
    tb = TensorBoardLogger(str(tmp_path), name="tb")
    csv = CSVLogger(str(tmp_path), name="csv")
    spy: list[tuple[Any, ...]] = []
    original = tb.experiment.add_figure

    def add_figure(*args: Any, **kwargs: Any) -> None:
        spy.append((args, kwargs))
        original(*args, **kwargs)

    tb.experiment.add_figure = add_figure
    fig = _figure()
    written = log_figure(_trainer(tmp_path, [wandb, mlflow, tb, csv]), fig, "val/thing")
    name = "val_thing_epoch002_step000007.png"
    # W&B: an RGB uint8 array of the rendered figure, at the trainer's step
    (call,) = wandb.calls
    assert call["key"] == "val/thing" and call["step"] == 7
    (rgb,) = call["images"]
    assert rgb.dtype == np.uint8 and rgb.shape == (150, 200, 3) and rgb.std() > 0
    # MLflow: the figure itself, as an artifact under figures/
    assert mlflow.calls == [("run-123", fig, f"figures/{name}")]
    # TensorBoard: add_figure without letting it close (pyplot) the figure; the image is in the event file
    assert spy == [(("val/thing", fig), {"global_step": 7, "close": False})]
    tb.experiment.flush()
    events = EventAccumulator(tb.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert events.Tags()["images"] == ["val/thing"]
    assert [e.step for e in events.Images("val/thing")] == [7]
    # CSV takes no figures: a PNG under its log dir; nothing else is written
    assert written == [(Path(csv.log_dir) / "figures" / name).resolve()]
    assert _is_png(written[0])
    assert not (tmp_path / "root").exists()


def test_log_figure_save_dir_and_no_logger(tmp_path: Path) -> None:
    fig = _figure()
    # no logger: under default_root_dir/figures
    (path,) = log_figure(_trainer(tmp_path, []), fig, "x")
    assert path == (tmp_path / "root" / "figures" / "x_epoch002_step000007.png").resolve() and _is_png(path)
    # save_dir: always there (also next to a TensorBoard logger), and no second copy for a CSV logger
    csv = CSVLogger(str(tmp_path), name="csv")
    tb = TensorBoardLogger(str(tmp_path), name="tb")
    paths = log_figure(_trainer(tmp_path, [tb, csv]), fig, "x", save_dir=tmp_path / "out")
    assert paths == [(tmp_path / "out" / "x_epoch002_step000007.png").resolve()]
    assert not (Path(csv.log_dir) / "figures").exists()


def test_log_figure_failing_logger_does_not_stop_the_others(tmp_path: Path) -> None:
    class BrokenWandb(FakeWandb):
        def log_image(self, key: str, images: list[Any], step: int | None = None) -> None:
            raise ConnectionError("offline")

    csv = CSVLogger(str(tmp_path), name="csv")
    with pytest.raises(
        RuntimeError, match=r"logging figure 'x' failed for BrokenWandb: ConnectionError: offline"
    ):
        log_figure(_trainer(tmp_path, [BrokenWandb(), csv]), _figure(), "x")
    assert _is_png(Path(csv.log_dir) / "figures" / "x_epoch002_step000007.png")


# -- rank-zero drawing --------------------------------------------------------------------------------
class _Drawer(FigureCallback):
    persistent = (*FigureCallback.persistent, "history")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("test/fig", **kwargs)
        self.history: dict[str, list[int]] = {"a": [1, 2]}


def test_draw_and_log_closes_figures(tmp_path: Path) -> None:
    cb = _Drawer()
    fig_a, fig_b = _figure(), _figure()
    files = cb.draw_and_log(_trainer(tmp_path, []), lambda: {"t/a": fig_a, "t/b": fig_b})
    assert [f.name for f in files] == ["t_a_epoch002_step000007.png", "t_b_epoch002_step000007.png"]
    assert fig_a.axes == [] and fig_b.axes == []  # cleared after logging
    assert cb.figures_logged == {"t/a": 1, "t/b": 1}
    # a figure made with pyplot is removed from pyplot's registry too
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = plt.figure()
    plt.plot([0, 1])
    cb.draw_and_log(_trainer(tmp_path, []), lambda: made)
    assert not plt.fignum_exists(made.number)
    assert cb.figures_logged["test/fig"] == 1


def test_draw_and_log_failure_warns_and_only_rank_zero_draws(tmp_path: Path) -> None:
    cb = _Drawer()

    def broken() -> Figure:
        raise RuntimeError("injected plotting bug")

    with pytest.warns(
        RuntimeWarning, match=r"_Drawer: drawing or logging 'test/fig' failed .*injected plotting bug"
    ):
        assert cb.draw_and_log(_trainer(tmp_path, []), broken) == []
    assert cb.figures_logged == {}

    class BrokenLogger:
        @property
        def experiment(self) -> Any:
            raise OSError("disk full")

    fig = _figure()
    with pytest.warns(RuntimeWarning, match="disk full"):
        cb.draw_and_log(_trainer(tmp_path, [BrokenLogger()]), lambda: fig)
    assert fig.axes == []  # closed even when logging failed

    calls: list[int] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (
            cb.draw_and_log(_trainer(tmp_path, [], rank0=False), lambda: calls.append(1) or _figure()) == []
        )
    assert calls == []


# -- state ----------------------------------------------------------------------------------------------
def test_state_dict_round_trip_is_a_copy() -> None:
    cb = _Drawer()
    cb.figures_logged = {"t": 3}
    state = cb.state_dict()
    assert state == {"figures_logged": {"t": 3}, "history": {"a": [1, 2]}}
    cb.history["a"].append(3)
    assert state["history"] == {"a": [1, 2]}
    fresh = _Drawer()
    fresh.load_state_dict(state)
    assert fresh.figures_logged == {"t": 3} and fresh.history == {"a": [1, 2]}
    assert _Drawer().state_key != LearningRateMonitorCallback().state_key
    a, b = DetectionVisualizationCallback(tag="val/a"), DetectionVisualizationCallback(tag="val/b")
    assert a.state_key != b.state_key


def test_argument_checks() -> None:
    with pytest.raises(ValueError, match="every_n_epochs"):
        _Drawer(every_n_epochs=0)
    with pytest.raises(TypeError, match="extract"):
        DetectionVisualizationCallback(extract="preds")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_samples"):
        DetectionVisualizationCallback(num_samples=0)


# -- the outputs contract -----------------------------------------------------------------------------
def test_missing_keys_give_one_clear_error() -> None:
    cb = DetectionVisualizationCallback()
    images = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError) as err:
        cb.extract_outputs({"loss": torch.tensor(1.0), "preds": []}, {"images": images})
    msg = str(err.value)
    assert "DetectionVisualizationCallback" in msg and "'preds', 'targets'" in msg
    assert "missing 'targets'" in msg and "['loss', 'preds']" in msg and "extract=" in msg
    assert "torchmetrics detection format" in msg
    with pytest.raises(ValueError, match=r"got Tensor"):
        cb.extract_outputs(torch.tensor(1.0), {"images": images})
    with pytest.raises(ValueError, match=r"`extract\(outputs, batch\)` must be a dict"):
        DetectionVisualizationCallback(extract=lambda o, b: {"preds": []}).extract_outputs(None, None)
    with pytest.raises(ValueError, match=r"no images to draw on: expected batch\['images'\]"):
        cb.extract_outputs({"preds": [], "targets": []}, {"x": images})


def test_images_come_from_the_batch_or_extract() -> None:
    images = torch.rand(2, 3, 8, 8)
    assert batch_images({"images": images}) is images
    assert batch_images((images, "targets")) is images
    assert batch_images(images) is images
    assert batch_images({"x": 1}) is None and batch_images(3) is None
    cb = DetectionVisualizationCallback()
    out = cb.extract_outputs({"preds": [1], "targets": [2], "extra": 0}, [images, None])
    assert set(out) == {"preds", "targets", "images"} and out["images"] is images
    other = torch.rand(2, 3, 8, 8)
    cb = DetectionVisualizationCallback(
        extract=lambda o, b: {"preds": o[0], "targets": o[1], "images": other}
    )
    out = cb.extract_outputs(([1], [2]), {"images": images})
    assert out["images"] is other and out["preds"] == [1]


def test_validation_outputs_callback_is_abstract_about_updates() -> None:
    class Keys(ValidationOutputsCallback):
        required_keys = ("a",)

    with pytest.raises(NotImplementedError):
        Keys("t").update_batch(None, None, {"a": 1})  # type: ignore[arg-type]


# -- imports --------------------------------------------------------------------------------------------
def test_metrics_import_without_lightning_and_lazy_exports() -> None:
    code = (
        "import sys; import objdet.training.metrics; import objdet.training; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')]; "
        "assert not bad, bad; "
        "from objdet.training import GradientMonitorCallback; "
        "assert 'lightning' in sys.modules; print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": SRC}, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_public_names() -> None:
    import objdet.training.callbacks as callbacks

    for name in objdet.training.__all__:
        assert getattr(objdet.training, name) is getattr(callbacks, name)
        assert name in dir(objdet.training)
    with pytest.raises(AttributeError, match="NoSuchCallback"):
        objdet.training.NoSuchCallback  # noqa: B018
