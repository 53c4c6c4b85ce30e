"""Shared machinery of the callbacks: gating, rank-zero drawing, figure routing, the ``outputs`` contract.

Three layers, each adding one concern (subclass the lowest one that fits):

* :class:`FigureCallback` -- ``every_n_epochs`` / sanity-check gating, drawing on rank 0 inside
  ``try/except`` (:meth:`~FigureCallback.draw_and_log`), routing each figure to every attached
  logger by type (:func:`log_figure`), scalar logging and checkpointed counters.
* :class:`ValidationOutputsCallback` -- reads the ``outputs`` of ``on_validation_batch_end``
  (or a user ``extract(outputs, batch)``), checks the keys it needs and hands one dict per batch
  to :meth:`~ValidationOutputsCallback.update_batch`.
* :class:`ValidationMetricCallback` -- owns a torchmetrics ``Metric``: reset and update on every
  rank, ``compute()`` on every rank at the end of the validation epoch, drawing of the synced
  (global) state on rank 0, scalars through ``pl_module.log``.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics import Metric

from objdet.plotting._common import close_figure, figure_to_rgb

__all__ = [
    "DETECTION_KEYS",
    "DETECTION_OUTPUTS_HELP",
    "ExtractFn",
    "FigureCallback",
    "ValidationMetricCallback",
    "ValidationOutputsCallback",
    "batch_images",
    "figure_file_name",
    "log_figure",
    "logger_kind",
    "logging_step",
    "scalar_names",
]

#: ``extract(outputs, batch) -> dict``: what a callback reads from one validation batch.
ExtractFn = Callable[[Any, Any], Mapping[str, Any]]
#: What a draw function returns: one figure (logged under the callback's tag) or ``{tag: figure}``.
Drawn = Figure | Mapping[str, Figure]
#: ``required_keys`` / ``outputs_help`` of the callbacks fed with detections.
DETECTION_KEYS = ("preds", "targets")
DETECTION_OUTPUTS_HELP = (
    "Expected preds/targets as lists with one dict per image in the torchmetrics detection format "
    "(preds: boxes, scores, labels; targets: boxes, labels)."
)


# ------------------------------------------------------------------------------------------------
# figure routing
# ------------------------------------------------------------------------------------------------
def logger_kind(logger: Any) -> str:
    """``"wandb"``, ``"mlflow"``, ``"tensorboard"`` or ``"files"``, by what the logger can do (duck typing).

    * W&B-like: the logger has a ``log_image(key, images, step)`` method;
    * MLflow-like: it has a string ``run_id`` and its ``experiment`` has ``log_figure``;
    * TensorBoard-like: its ``experiment`` has ``add_figure`` (TensorBoard, tensorboardX);
    * anything else (CSVLogger, custom loggers) takes no figures: a PNG file is written instead.

    No logger package is imported (W&B and MLflow need not be installed).
    """
    if callable(getattr(logger, "log_image", None)):
        return "wandb"
    experiment = getattr(logger, "experiment", None)
    if isinstance(getattr(logger, "run_id", None), str) and callable(getattr(experiment, "log_figure", None)):
        return "mlflow"
    if callable(getattr(experiment, "add_figure", None)):
        return "tensorboard"
    return "files"


def logging_step(trainer: Any) -> int:
    """The step at which Lightning logs what ``pl_module.log`` records now.

    At the end of a validation run inside ``fit`` that is one less than ``trainer.global_step``
    (validation runs before the last training batch is counted), so figures and scalars of the
    callbacks land at the same step as ``val/map`` or ``val_loss`` of the same epoch. Without a
    fit loop (a stand-in trainer) it is ``trainer.global_step``. Read from Lightning's
    ``fit_loop.epoch_loop._batches_that_stepped``, the counter its logger connector uses.
    """
    loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
    step = getattr(loop, "_batches_that_stepped", None)
    return step if isinstance(step, int) and not isinstance(step, bool) else int(trainer.global_step)


def scalar_names(names: Sequence[str]) -> list[str]:
    """Class names made safe as the last part of logged scalar names, on every logger, and distinct.

    Every character outside ``[A-Za-z0-9_.- ]`` (``/`` included) becomes ``_``, so a class name
    never opens a folder (MLflow's file store keeps ``a/b`` as a file ``b`` in a folder ``a``, so
    a name cannot be a metric and a folder at once) and MLflow's name check drops nothing; an
    empty name becomes ``class_<i>``; names equal after that get ``_<i>`` appended (``i`` the
    index in ``names``).

    Example:
        >>> from objdet.training.callbacks import scalar_names
        >>> scalar_names(["cat", "traffic light", "a/b", "a_b", "(x)", ""])
        ['cat', 'traffic light', 'a_b_2', 'a_b_3', '_x_', 'class_5']
    """
    safe = [re.sub(r"[^A-Za-z0-9_. -]", "_", str(n)).strip() or f"class_{i}" for i, n in enumerate(names)]
    counts = Counter(safe)
    return [f"{n}_{i}" if counts[n] > 1 else n for i, n in enumerate(safe)]


def figure_file_name(tag: str, epoch: int, step: int) -> str:
    """``<tag>_epoch<EEE>_step<SSSSSS>.png`` with every character outside ``[A-Za-z0-9._-]`` as ``_``."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", tag).strip("_") or "figure"
    return f"{safe}_epoch{epoch:03d}_step{step:06d}.png"


def _files_dir(logger: Any, trainer: pl.Trainer) -> Path:
    for attr in ("log_dir", "save_dir"):
        value = getattr(logger, attr, None)
        if isinstance(value, (str, Path)):
            return Path(value) / "figures"
    return Path(trainer.default_root_dir) / "figures"


def log_figure(
    trainer: pl.Trainer,
    fig: Figure,
    tag: str,
    save_dir: str | Path | None = None,
    dpi: float = 100,
    step: int | None = None,
    epoch: int | None = None,
) -> list[Path]:
    """Send ``fig`` to every logger of ``trainer`` by type; return the PNG files written.

    TensorBoard-like loggers get ``experiment.add_figure(tag, fig, global_step=step)``,
    W&B-like ``log_image(key=tag, images=[rgb array], step=step)``, MLflow-like
    ``experiment.log_figure(run_id, fig, "figures/<file name>")`` (see :func:`logger_kind`).
    PNG files (:func:`figure_file_name`) are written to ``save_dir`` when it is given (always),
    otherwise under ``<logger.log_dir>/figures`` for each logger that takes no figures
    (CSVLogger), or ``<trainer.default_root_dir>/figures`` without any logger. ``step``
    defaults to :func:`logging_step` (the step of the epoch's ``pl_module.log`` values),
    ``epoch`` (in the file name) to ``trainer.current_epoch``. Call on rank 0 only; the figure
    is not closed here.
    A destination that fails does not stop the others: a ``RuntimeError`` naming every failure
    is raised once all were tried.
    """
    step = logging_step(trainer) if step is None else step
    name = figure_file_name(tag, trainer.current_epoch if epoch is None else epoch, step)
    dirs: list[Path] = [Path(save_dir)] if save_dir is not None else []
    errors: list[str] = []
    for logger in trainer.loggers:
        target: Any = logger  # the methods used below are found by duck typing (see logger_kind)
        try:
            kind = logger_kind(target)
            if kind == "wandb":
                target.log_image(key=tag, images=[figure_to_rgb(fig)], step=step)
            elif kind == "mlflow":
                target.experiment.log_figure(target.run_id, fig, f"figures/{name}")
            elif kind == "tensorboard":
                target.experiment.add_figure(tag, fig, global_step=step, close=False)
            elif save_dir is None:
                dirs.append(_files_dir(logger, trainer))
        except Exception as err:
            errors.append(f"{type(logger).__name__}: {type(err).__name__}: {err}")
    if not trainer.loggers and save_dir is None:
        dirs.append(Path(trainer.default_root_dir) / "figures")
    written: list[Path] = []
    for d in dict.fromkeys(p.resolve() for p in dirs):
        try:
            d.mkdir(parents=True, exist_ok=True)
            fig.savefig(d / name, dpi=dpi)
            written.append(d / name)
        except Exception as err:
            errors.append(f"PNG in {d}: {type(err).__name__}: {err}")
    if errors:
        raise RuntimeError(f"logging figure {tag!r} failed for " + "; ".join(errors))
    return written


def batch_images(batch: Any) -> Any:
    """Images of a batch: ``batch["images"]`` for a dict, ``batch[0]`` for a list/tuple, a tensor itself."""
    if isinstance(batch, Mapping):
        return batch.get("images")
    if isinstance(batch, (list, tuple)):
        return batch[0] if batch else None
    if isinstance(batch, Tensor):
        return batch
    return None


def _detach(value: Any) -> Any:
    """A CPU copy of every tensor in nested lists / tuples / dicts (for buffers kept across batches)."""
    if isinstance(value, Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, Mapping):
        return {k: _detach(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_detach(v) for v in value)
    return value


# ------------------------------------------------------------------------------------------------
# base classes
# ------------------------------------------------------------------------------------------------
class FigureCallback(Callback):
    """Base class: gating, rank-zero drawing in ``try/except``, figure routing and checkpointed counters.

    Args:
        tag: name under which figures (and, by subclasses, scalars) are logged, e.g. ``"val/detections"``.
        every_n_epochs: draw only when ``(trainer.current_epoch + 1) % every_n_epochs == 0``
            (always under ``trainer.validate``); never during the sanity check.
        save_dir: if given, every figure is also written there as PNG; otherwise PNGs are
            written only for loggers that take no figures (see :func:`log_figure`).
        dpi: resolution of the PNG files.

    Extension points: :meth:`should_run`, :meth:`draw_and_log`, :meth:`log_scalars`; attributes
    named in the class variable ``persistent`` are saved in checkpoints (``state_dict``) and
    restored by ``load_state_dict``, so a resumed run continues its counters and histories.
    ``figures_logged`` counts the figures logged per tag.
    """

    persistent: ClassVar[tuple[str, ...]] = ("figures_logged",)

    def __init__(
        self, tag: str, every_n_epochs: int = 1, save_dir: str | Path | None = None, dpi: float = 100
    ) -> None:
        if not isinstance(every_n_epochs, int) or isinstance(every_n_epochs, bool) or every_n_epochs < 1:
            raise ValueError(f"`every_n_epochs` must be a positive int, got {every_n_epochs!r}")
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"`tag` must be a non-empty string, got {tag!r}")
        self.tag = tag
        self.every_n_epochs = every_n_epochs
        self.save_dir = save_dir
        self.dpi = dpi
        self.figures_logged: dict[str, int] = {}
        #: PNG files written by the last :meth:`draw_and_log` (rank 0; empty elsewhere).
        self.last_files: list[Path] = []

    @property
    def state_key(self) -> str:
        return self._generate_state_key(tag=self.tag)

    # -- gating ----------------------------------------------------------------------------------
    def should_run(self, trainer: pl.Trainer) -> bool:
        """False during the sanity check; True under ``trainer.validate``; else every ``every_n_epochs``."""
        if trainer.sanity_checking:
            return False
        if trainer.state.fn == TrainerFn.VALIDATING:
            return True
        return (trainer.current_epoch + 1) % self.every_n_epochs == 0

    # -- drawing ---------------------------------------------------------------------------------
    def draw_and_log(
        self,
        trainer: pl.Trainer,
        draw: Callable[[], Drawn],
        tag: str | None = None,
        epoch: int | None = None,
    ) -> list[Path]:
        """On global rank 0: call ``draw()``, log what it returns (:func:`log_figure`), close the figures.

        ``draw`` returns one figure (logged under ``tag``, default ``self.tag``) or ``{tag: figure}``;
        ``epoch`` is the epoch written in the file names (default ``trainer.current_epoch``; at
        ``on_train_end`` use :meth:`last_epoch`).
        Any exception while drawing or logging becomes a warning (the run goes on; other ranks
        never wait for rank 0's drawing, which must not use collectives). Other ranks do nothing.
        Returns the PNG files written.
        """
        self.last_files = []
        if not trainer.is_global_zero:
            return []
        figures: dict[str, Figure] = {}
        tag = self.tag if tag is None else tag
        try:
            result = draw()
            figures = {tag: result} if isinstance(result, Figure) else dict(result)
            for fig_tag, fig in figures.items():
                self.last_files += log_figure(trainer, fig, fig_tag, self.save_dir, self.dpi, epoch=epoch)
                self.figures_logged[fig_tag] = self.figures_logged.get(fig_tag, 0) + 1
        except Exception as err:
            rank_zero_warn(
                f"{type(self).__name__}: drawing or logging {tag!r} failed at epoch {trainer.current_epoch}, "
                f"step {trainer.global_step} ({type(err).__name__}: {err}); training continues without it.",
                category=RuntimeWarning,
            )
        finally:
            for fig in figures.values():
                close_figure(fig)
        return list(self.last_files)

    @staticmethod
    def last_epoch(trainer: pl.Trainer) -> int:
        """The last epoch that ran, at ``on_train_end`` (``trainer.current_epoch`` is one past it there)."""
        return max(int(trainer.current_epoch) - 1, 0)

    def log_scalars(self, trainer: pl.Trainer, values: Mapping[str, float], step: int | None = None) -> None:
        """``log_metrics(values, step)`` on every logger (rank 0 only, as loggers do).

        ``step`` defaults to :func:`logging_step`.
        """
        if not values:
            return
        step = logging_step(trainer) if step is None else step
        for logger in trainer.loggers:
            logger.log_metrics(dict(values), step=step)

    # -- checkpointing ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {name: copy.deepcopy(getattr(self, name)) for name in self.persistent}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for name in self.persistent:
            if name in state_dict:
                setattr(self, name, copy.deepcopy(state_dict[name]))


class ValidationOutputsCallback(FigureCallback):
    """Base class of callbacks fed from ``outputs`` of ``on_validation_batch_end`` (never from the model).

    By default ``outputs`` (what ``validation_step`` returns) must be a dict with the keys in
    ``required_keys`` (``optional_keys`` are used when present); with ``extract``,
    ``extract(outputs, batch)`` must return such a dict instead. Unless ``needs_images`` is
    False (True: required; None: used when found) the images come from the dict's ``"images"``
    key, else from the batch (:func:`batch_images`: ``batch["images"]`` or ``batch[0]``). A
    missing key raises one ``ValueError`` naming what was expected (``outputs_help`` describes
    the format).

    Per validation epoch where :meth:`~FigureCallback.should_run` holds, on every rank:
    :meth:`reset_epoch`, :meth:`update_batch` for each batch, :meth:`finish_epoch`.
    """

    #: keys the dict must have (a class attribute, or set per instance in ``__init__``)
    required_keys: tuple[str, ...] = ()
    #: keys passed on when present
    optional_keys: tuple[str, ...] = ()
    #: True: images required; None: used when found; False: not looked for
    needs_images: bool | None = False
    #: one sentence on the expected format, appended to the missing-key error
    outputs_help: str = ""

    def __init__(self, tag: str, extract: ExtractFn | None = None, **kwargs: Any) -> None:
        super().__init__(tag, **kwargs)
        if extract is not None and not callable(extract):
            raise TypeError(
                f"`extract` must be a callable (outputs, batch) -> dict, got {type(extract).__name__}"
            )
        self.extract = extract
        self._active = False

    # -- the outputs contract ----------------------------------------------------------------------
    def extract_outputs(self, outputs: Any, batch: Any) -> dict[str, Any]:
        """The dict of ``required_keys`` (+ present ``optional_keys``, + ``images``) for one batch."""
        source = "`extract(outputs, batch)`" if self.extract is not None else "`outputs` of validation_step"
        data = self.extract(outputs, batch) if self.extract is not None else outputs
        missing = [k for k in self.required_keys if not isinstance(data, Mapping) or k not in data]
        if missing:
            seen = (
                f"a dict with keys {sorted(map(str, data))}"
                if isinstance(data, Mapping)
                else f"{type(data).__name__}"
            )
            keys = ", ".join(repr(k) for k in self.required_keys)
            hint = "" if self.extract is not None else " (or pass `extract=fn(outputs, batch) -> dict`)"
            raise ValueError(
                f"{type(self).__name__}: {source} must be a dict with keys {keys}{hint}; got {seen}, "
                f"missing {', '.join(repr(k) for k in missing)}. {self.outputs_help}".rstrip()
            )
        assert isinstance(data, Mapping)
        out = {k: data[k] for k in (*self.required_keys, *self.optional_keys) if k in data}
        if self.needs_images is not False:
            images = data.get("images", None)
            if images is None:
                images = batch_images(batch)
            if images is not None:
                out["images"] = images
            elif self.needs_images:
                raise ValueError(
                    f"{type(self).__name__}: no images to draw on: expected batch['images'] (dict batch), "
                    f"batch[0] (tuple/list batch) or an 'images' key from `extract`; got a batch of type "
                    f"{type(batch).__name__}"
                )
        return out

    # -- Lightning hooks -------------------------------------------------------------------------
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._active = self.should_run(trainer)
        if self._active:
            self.reset_epoch(trainer, pl_module)

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._active:
            self.update_batch(trainer, pl_module, self.extract_outputs(outputs, batch))

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._active:
            self._active = False
            self.finish_epoch(trainer, pl_module)

    # -- extension points ------------------------------------------------------------------------
    def reset_epoch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start of an active validation epoch (every rank). Default: nothing."""

    def update_batch(self, trainer: pl.Trainer, pl_module: pl.LightningModule, data: dict[str, Any]) -> None:
        """One validation batch (every rank); ``data`` is :meth:`extract_outputs`' dict."""
        raise NotImplementedError

    def finish_epoch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """End of an active validation epoch (every rank); draw with :meth:`~FigureCallback.draw_and_log`."""
        raise NotImplementedError

    @staticmethod
    def detach(value: Any) -> Any:
        """A CPU copy of every tensor in ``value`` (nested lists / tuples / dicts), to keep across batches."""
        return _detach(value)


class ValidationMetricCallback(ValidationOutputsCallback):
    """Base class of callbacks that own a torchmetrics ``Metric`` fed from validation outputs.

    Subclasses implement :meth:`make_metric`, :meth:`update_metric`, :meth:`draw` and
    optionally :meth:`scalars`. With ``compute_every_epoch=True`` (default) the metric is
    updated, computed and its scalars logged at every validation epoch but the sanity check
    (so ModelCheckpoint / EarlyStopping always find them), and figures are drawn only where
    :meth:`~FigureCallback.should_run` holds (every ``every_n_epochs``; see
    :attr:`~ValidationMetricCallback.drawing_epoch`); with ``False`` the other epochs are
    skipped entirely. Per active validation epoch:

    1. every rank: the metric is moved to the module's device and reset; each batch goes to
       :meth:`update_metric`;
    2. every rank: ``compute()`` (torchmetrics syncs the states across ranks, computes, restores
       the local states and caches the result), kept in ``last_values``;
    3. every rank: the states are synced once more (``Metric.sync_context``, a no-op without
       DDP); inside it :meth:`after_compute` runs on every rank (derived values of the global
       state, e.g. curves, without collectives), then, in a drawing epoch, on rank 0 only and
       inside ``try/except``, ``draw(trainer, metric, values)`` sees the global state (a
       ``metric.plot()`` that calls ``compute()`` gets the cached values, without
       collectives); the local states are restored afterwards;
    4. every rank: :meth:`scalars` are logged through ``pl_module.log`` (already global, so
       ``sync_dist=False``; ModelCheckpoint / EarlyStopping can monitor them).

    The metric must keep torchmetrics' defaults ``sync_on_compute=True`` and
    ``compute_with_cache=True``.
    """

    def __init__(self, tag: str, compute_every_epoch: bool = True, **kwargs: Any) -> None:
        super().__init__(tag, **kwargs)
        self.compute_every_epoch = compute_every_epoch
        self._metric: Metric | None = None
        self._drawing = False
        #: what ``compute()`` returned at the last active validation epoch (every rank).
        self.last_values: Any = None

    @property
    def drawing_epoch(self) -> bool:
        """Whether the current validation epoch ends with drawing (``should_run`` held at its start)."""
        return self._drawing

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._drawing = self.should_run(trainer)
        self._active = self._drawing or (self.compute_every_epoch and not trainer.sanity_checking)
        if self._active:
            self.reset_epoch(trainer, pl_module)

    @property
    def metric(self) -> Metric:
        """The owned metric (built on first use by :meth:`make_metric`)."""
        if self._metric is None:
            metric = self.make_metric()
            if not isinstance(metric, Metric):
                raise TypeError(
                    f"make_metric() must return a torchmetrics Metric, got {type(metric).__name__}"
                )
            if not (metric.sync_on_compute and metric.compute_with_cache):
                raise ValueError(
                    f"{type(self).__name__}.make_metric() must keep sync_on_compute=True and "
                    f"compute_with_cache=True (got {metric.sync_on_compute} and "
                    f"{metric.compute_with_cache}): values must be global and drawing must not recompute"
                )
            self._metric = metric
        return self._metric

    def make_metric(self) -> Metric:
        """A new metric (torchmetrics' sync and cache defaults kept)."""
        raise NotImplementedError

    def update_metric(self, metric: Metric, data: dict[str, Any]) -> None:
        """Feed one batch's ``data`` (see :meth:`ValidationOutputsCallback.extract_outputs`) to ``metric``."""
        raise NotImplementedError

    def draw(self, trainer: pl.Trainer, metric: Metric, values: Any) -> Drawn:
        """Figure(s) of the synced metric and its computed ``values`` (rank 0 only; no collectives)."""
        raise NotImplementedError

    def after_compute(self, trainer: pl.Trainer, metric: Metric, values: Any) -> None:
        """Every rank, on the synced (global) state, before drawing: derive more values. Default: nothing.

        Runs inside ``metric.sync_context()``, so methods of the metric that gather the state
        themselves unless it is synced (e.g. ``MeanAveragePrecision.curves()``) use no
        collectives here. It runs on every rank with the same global state, so an error here is
        raised on every rank alike (no hang); keep anything that may fail on one rank only
        for :meth:`draw`.
        """

    def scalars(self, values: Any) -> Mapping[str, Tensor | float]:
        """Scalars to log with ``pl_module.log`` from the computed ``values``. Default: none."""
        return {}

    def reset_epoch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metric = self.metric.to(pl_module.device)
        self._metric = metric
        metric.reset()

    def update_batch(self, trainer: pl.Trainer, pl_module: pl.LightningModule, data: dict[str, Any]) -> None:
        self.update_metric(self.metric, data)

    def finish_epoch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metric = self.metric
        values = metric.compute()  # every rank: synced, computed, local state restored, cached
        self.last_values = values
        with metric.sync_context():  # every rank: the global state again, for rank 0 to draw
            self.after_compute(trainer, metric, values)
            if self._drawing:
                self.draw_and_log(trainer, lambda: self.draw(trainer, metric, values))
        for key, value in self.scalars(values).items():
            pl_module.log(key, value, on_step=False, on_epoch=True, sync_dist=False)
