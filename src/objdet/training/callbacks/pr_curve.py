"""COCO mAP of every validated epoch, with PR curves, F1 vs confidence, per-class AP bars and calibration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, cast

import lightning.pytorch as pl
import torch
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import rank_zero_warn

from objdet.functional.bootstrap import BootstrapResult
from objdet.functional.calibration import DetectionCalibration
from objdet.functional.curves import DetectionCurves
from objdet.plotting._common import close_figure
from objdet.plotting.detection import plot_detection_curves, plot_reliability_diagram, plot_slice_bars
from objdet.training.callbacks._base import (
    DETECTION_KEYS,
    DETECTION_OUTPUTS_HELP,
    ExtractFn,
    ValidationMetricCallback,
    scalar_names,
)
from objdet.training.metrics.mean_ap import MeanAveragePrecision

__all__ = ["PRCurveCallback"]

PlotKind = Literal["pr", "f1", "precision", "recall", "ap", "reliability"]
_KINDS = ("pr", "f1", "precision", "recall", "ap", "reliability")
#: scalars of ``compute()`` logged every validated epoch
_SUMMARY = ("map", "map_50", "map_75", "mar_100")


class PRCurveCallback(ValidationMetricCallback):
    """Own a :class:`~objdet.training.metrics.MeanAveragePrecision`; log mAP, draw PR / F1 curves and AP bars.

    Reads ``outputs["preds"]`` and ``outputs["targets"]`` of ``validation_step`` (lists with
    one dict per image in the torchmetrics detection format), or what ``extract(outputs,
    batch)`` returns. Each validation epoch but the sanity check:

    * every rank updates the metric and computes it (COCO evaluation of all ranks' images):
      ``last_values`` is ``compute()``'s dict; then, on the synced state and without further
      collectives, the curves at ``iou_threshold`` (``metric.curves()``): ``last_curves``, a
      :class:`~objdet.functional.curves.DetectionCurves`;
    * every ``every_n_epochs`` epochs rank 0 draws, for each entry of ``plots``, a figure
      logged under ``{tag}/{kind}`` (:func:`objdet.plotting.detection.plot_detection_curves`):
      ``"pr"`` precision-recall per class and their mean, ``"f1"`` / ``"precision"`` /
      ``"recall"`` vs the confidence threshold with the best-F1 threshold marked, ``"ap"``
      per-class AP bars, ``"reliability"`` the reliability diagram of ``metric.calibration()``
      (:func:`objdet.plotting.detection.plot_reliability_diagram`). Files are
      named ``<tag>_<kind>_epoch<EEE>_step<SSSSSS>.png`` (``val_curves_pr_epoch003_step000119.png``),
      see :func:`~objdet.training.callbacks.log_figure` for where they go;
    * every rank logs (``pl_module.log``): ``{prefix}map``, ``{prefix}map_50``,
      ``{prefix}map_75``, ``{prefix}mar_100`` (pycocotools' values, -1 when no GT was seen,
      -1 for ``map_75`` when 0.75 is not among the metric's IoU thresholds), the best overall
      F1 over the confidence thresholds and where it is reached (``{prefix}best_f1``,
      ``{prefix}best_f1_confidence``) and, with ``log_per_class``, each class's AP at
      ``iou_threshold`` (``{prefix}ap_50/<name>`` for 0.5, ``ap_75/<name>`` for 0.75, ...,
      ``<name>`` = ``class_names[id]`` or ``class_<id>``, made safe by
      :func:`~objdet.training.callbacks.scalar_names`). Undefined values (a class without
      GT, F1 without any detection or GT) are not logged. No logged name is the folder of
      another (MLflow's file store cannot hold both);
    * with ``calibration=True`` (or ``"reliability"`` in ``plots``), on every rank, the
      calibration of the scores at ``iou_threshold`` (``metric.calibration()``, from the same
      synced state): ``last_calibration``, a
      :class:`~objdet.functional.calibration.DetectionCalibration`, and the scalars
      ``{prefix}ece`` and ``{prefix}mce`` (not logged without any counted detection). Scores
      outside [0, 1] (logits: calibration is not defined, objdet applies no sigmoid) give one
      warning and no calibration, rather than stopping the training;
    * for each ``beta`` in ``fbeta``: the best overall F-beta and its confidence threshold,
      ``{prefix}best_f<beta>`` and ``{prefix}best_f<beta>_confidence`` (``best_f2``; a beta of
      0.5 is written ``best_f0_5``);
    * with ``slices`` (names; the metric is made with ``slices=`` and the targets tag their
      images, see :meth:`~objdet.training.metrics.MeanAveragePrecision.compute_slices`), on
      every rank, each slice's numbers: ``last_slices`` and the scalars
      ``{prefix}slices/<name>/map``, ``.../map_50`` (not logged for a slice without GT); rank 0
      draws the ``"slices"`` figure (AP per slice) when ``slices`` are given;
    * with ``bootstrap`` = B > 0, on every rank, bootstrap intervals over images
      (:meth:`~objdet.training.metrics.MeanAveragePrecision.bootstrap`, seed 0, level
      ``bootstrap_level``): ``last_bootstrap`` and the scalars ``{prefix}map_ci_low``,
      ``{prefix}map_ci_high``, ``{prefix}map_50_ci_low``, ``{prefix}map_50_ci_high``.

    The per-class AP view is this callback's ``"ap"`` figure and ``ap_<t>/<name>`` scalars:
    they come from the same curves as the PR figure, so a separate per-class AP callback would
    only evaluate the same state twice.

    Args:
        class_names: names indexed by class id (a sequence or ``{id: name}``).
        iou_threshold: IoU threshold of the curves; one of the metric's ``iou_thresholds``.
        plots: which figures to draw (any of "pr", "f1", "precision", "recall", "ap").
        confidence_steps: number of confidence thresholds of the confidence curves.
        average: how the overall confidence curves pool the classes: "micro" or "macro".
        box_format: "xyxy", "xywh" or "cxcywh".
        log_per_class: also log the per-class AP scalars.
        calibration: compute and log the calibration (ECE, MCE) every computed epoch.
        calibration_bins: number of confidence bins of the calibration.
        calibration_strategy: "width" (equal-width bins) or "mass" (equal-count bins).
        fbeta: betas whose best F-beta to log (e.g. ``(0.5, 2.0)``).
        slices: names of subsets of the images to evaluate and log (see above).
        bootstrap: number of bootstrap resamples per computed epoch (0: none).
        bootstrap_level: the intervals' level.
        metric_kwargs: further arguments of the metric (e.g. ``iou_thresholds``,
            ``max_detection_thresholds``, ``iou_type="keypoints"``).
        metric_class: :class:`~objdet.training.metrics.MeanAveragePrecision` (default) or a
            subclass, e.g. :class:`~objdet.training.metrics.LVISMeanAveragePrecision` (its
            targets carry the federated lists; ``metric_kwargs`` may give ``frequencies``).
        prefix: prefix of the logged scalars.
        compute_every_epoch: compute and log the scalars at every validation epoch (default),
            not only in the drawing ones (see
            :class:`~objdet.training.callbacks.ValidationMetricCallback`).
        tag, every_n_epochs, save_dir, dpi, extract: see
            :class:`~objdet.training.callbacks.ValidationOutputsCallback`.

    Example:
        >>> import torch
        >>> from objdet.training import PRCurveCallback
        >>> cb = PRCurveCallback(class_names=["cat", "dog"])
        >>> preds = [dict(boxes=torch.tensor([[0.0, 0, 10, 10], [50.0, 50, 60, 60]]),
        ...               scores=torch.tensor([0.8, 0.3]), labels=torch.tensor([0, 0]))]
        >>> target = [dict(boxes=torch.tensor([[0.0, 0, 10, 10]]), labels=torch.tensor([0]))]
        >>> cb.metric.update(preds, target)  # in a fit: from each validation batch's outputs
        >>> values = cb.metric.compute()
        >>> cb.after_compute(None, cb.metric, values)  # the curves (every rank)
        >>> for key, value in cb.scalars(values).items():
        ...     print(f"{key:26s} {value:.3f}")
        val/map                    1.000
        val/map_50                 1.000
        val/map_75                 1.000
        val/mar_100                1.000
        val/best_f1                1.000
        val/best_f1_confidence     0.301
        val/ap_50/cat              1.000
    """

    required_keys = DETECTION_KEYS
    outputs_help = DETECTION_OUTPUTS_HELP

    def __init__(
        self,
        class_names: Sequence[str] | Mapping[int, str] | None = None,
        iou_threshold: float = 0.5,
        plots: Sequence[PlotKind] = ("pr", "f1", "ap"),
        confidence_steps: int = 1001,
        average: Literal["micro", "macro"] = "micro",
        box_format: Literal["xyxy", "xywh", "cxcywh"] = "xyxy",
        log_per_class: bool = True,
        calibration: bool = False,
        calibration_bins: int = 10,
        calibration_strategy: Literal["width", "mass"] = "width",
        fbeta: Sequence[float] = (),
        slices: Sequence[str] = (),
        bootstrap: int = 0,
        bootstrap_level: float = 0.95,
        metric_kwargs: Mapping[str, Any] | None = None,
        metric_class: type[MeanAveragePrecision] = MeanAveragePrecision,
        prefix: str = "val/",
        tag: str = "val/curves",
        every_n_epochs: int = 1,
        compute_every_epoch: bool = True,
        save_dir: str | Path | None = None,
        dpi: float = 100,
        extract: ExtractFn | None = None,
    ) -> None:
        super().__init__(
            tag,
            compute_every_epoch=compute_every_epoch,
            extract=extract,
            every_n_epochs=every_n_epochs,
            save_dir=save_dir,
            dpi=dpi,
        )
        kinds: tuple[PlotKind, ...] = (cast(PlotKind, plots),) if isinstance(plots, str) else tuple(plots)
        bad = [p for p in kinds if p not in _KINDS]
        if bad:
            raise ValueError(f"`plots` must hold only {_KINDS}, got {bad}")
        if not isinstance(confidence_steps, int) or confidence_steps < 2:
            raise ValueError(f"`confidence_steps` must be an int >= 2, got {confidence_steps!r}")
        if average not in ("micro", "macro"):
            raise ValueError(f"`average` must be 'micro' or 'macro', got {average!r}")
        if (
            isinstance(calibration_bins, bool)
            or not isinstance(calibration_bins, int)
            or calibration_bins < 1
        ):
            raise ValueError(f"`calibration_bins` must be a positive int, got {calibration_bins!r}")
        if calibration_strategy not in ("width", "mass"):
            raise ValueError(
                f"`calibration_strategy` must be 'width' or 'mass', got {calibration_strategy!r}"
            )
        betas = (fbeta,) if isinstance(fbeta, int | float) else tuple(fbeta)
        bad_betas = [
            b
            for b in betas
            if isinstance(b, bool) or not isinstance(b, int | float) or not 0 < b < float("inf")
        ]
        if bad_betas:
            raise ValueError(f"`fbeta` must hold finite numbers > 0, got {bad_betas}")
        self.calibration = bool(calibration) or "reliability" in kinds
        self.calibration_bins = calibration_bins
        self.calibration_strategy = calibration_strategy
        self.fbeta = tuple(float(b) for b in betas)
        #: the calibration of the last validated epoch (every rank), None when not computed
        self.last_calibration: DetectionCalibration | None = None
        self._warned_calibration = False
        self.class_names = class_names
        self.iou_threshold = float(iou_threshold)
        self.plots = kinds
        self.confidence_steps = confidence_steps
        self.average = average
        self.box_format = box_format
        self.log_per_class = log_per_class
        self.metric_kwargs = dict(metric_kwargs or {})
        if not (isinstance(metric_class, type) and issubclass(metric_class, MeanAveragePrecision)):
            raise ValueError(
                f"`metric_class` must be MeanAveragePrecision or a subclass, got {metric_class!r}"
            )
        self.metric_class = metric_class
        if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
            raise ValueError(f"`bootstrap` must be an int >= 0 (resamples; 0: none), got {bootstrap!r}")
        if not isinstance(bootstrap_level, int | float) or not 0.0 < float(bootstrap_level) < 1.0:
            raise ValueError(f"`bootstrap_level` must lie in (0, 1), got {bootstrap_level!r}")
        self.bootstrap, self.bootstrap_level = bootstrap, float(bootstrap_level)
        self.slices = (slices,) if isinstance(slices, str) else tuple(slices)
        if self.slices:
            self.metric_kwargs["slices"] = list(self.slices)
        #: each slice's numbers and the bootstrap intervals of the last validated epoch (every rank)
        self.last_slices: dict[str, dict[str, Tensor]] | None = None
        self.last_bootstrap: BootstrapResult | None = None
        self.prefix = prefix
        #: the curves of the last validated epoch (every rank), from the global state
        self.last_curves: DetectionCurves | None = None
        thresholds = getattr(self.metric, "iou_thresholds", [])  # builds the metric: bad arguments fail here
        if not any(abs(t - self.iou_threshold) < 1e-9 for t in thresholds):
            raise ValueError(
                f"`iou_threshold` must be one of the metric's iou_thresholds {thresholds}, "
                f"got {iou_threshold!r}"
            )

    def make_metric(self) -> Metric:
        return self.metric_class(box_format=self.box_format, **self.metric_kwargs)

    def update_metric(self, metric: Metric, data: dict[str, Any]) -> None:
        metric.update(data["preds"], data["targets"])

    def class_name(self, class_id: int) -> str:
        """The name of a class id: ``class_names[id]`` when there is one, else ``class_<id>``."""
        names = self.class_names
        if isinstance(names, Mapping):
            return str(names.get(class_id, f"class_{class_id}"))
        if names is not None and 0 <= class_id < len(names):
            return str(names[class_id])
        return f"class_{class_id}"

    def scalar_name(self, class_id: int) -> str:
        """The ``<name>`` of a class id in the per-class scalar names (see the class docstring)."""
        return self._scalar_names().get(class_id, f"class_{class_id}")

    def _scalar_names(self) -> dict[int, str]:
        names = self.class_names
        if isinstance(names, Mapping):
            ids = sorted(names)
            return dict(zip(ids, scalar_names([str(names[i]) for i in ids]), strict=True))
        return dict(enumerate(scalar_names([str(n) for n in names]))) if names is not None else {}

    def after_compute(self, trainer: pl.Trainer, metric: Metric, values: Any) -> None:
        assert isinstance(metric, MeanAveragePrecision)
        self.last_curves = metric.curves(self.iou_threshold, self.confidence_steps, self.average)
        self.last_slices = metric.compute_slices() if self.slices else None
        self.last_bootstrap = (
            metric.bootstrap(self.bootstrap, self.bootstrap_level, seed=0) if self.bootstrap else None
        )
        if self.calibration:
            self.last_calibration = None
            try:  # the same synced state on every rank: every rank decides alike
                self.last_calibration = metric.calibration(
                    self.iou_threshold, self.calibration_bins, self.calibration_strategy
                )
            except ValueError as err:
                if not self._warned_calibration:
                    rank_zero_warn(f"PRCurveCallback: no calibration logged: {err}")
                    self._warned_calibration = True

    def draw(self, trainer: pl.Trainer, metric: Metric, values: Any) -> dict[str, Figure]:
        curves = self.last_curves
        if curves is None:
            return {}
        ids = curves.classes.tolist()
        names = {i: self.class_name(i) for i in ids}
        by_id = [names.get(i, "") for i in range(max(ids) + 1)] if ids else None
        figures: dict[str, Figure] = {}
        try:
            for kind in self.plots:
                if kind == "reliability":
                    if self.last_calibration is None:
                        continue
                    fig, ax = plot_reliability_diagram(self.last_calibration)
                else:
                    fig, ax = plot_detection_curves(curves, kind=kind, class_names=by_id)
                figures[f"{self.tag}/{kind}"] = fig
                ax.set_title(f"{ax.get_title()} — epoch {trainer.current_epoch}")
            if self.last_slices:
                overall = float(values["map"]) if isinstance(values, Mapping) and "map" in values else None
                fig, ax = plot_slice_bars(self.last_slices, overall=overall)
                figures[f"{self.tag}/slices"] = fig
                ax.set_title(f"{ax.get_title()} — epoch {trainer.current_epoch}")
        except Exception:
            for fig in figures.values():  # drawn before the failure: not returned, so closed here
                close_figure(fig)
            raise
        return figures

    def scalars(self, values: Mapping[str, Tensor]) -> dict[str, float]:
        keys = [k for k in _SUMMARY if k in values]
        stacked = [values[k].detach().double().reshape(()) for k in keys]
        summary = torch.stack(stacked).tolist() if keys else []
        out = {f"{self.prefix}{k}": v for k, v in zip(keys, summary, strict=True)}
        curves = self.last_curves
        if curves is None:
            return out
        best_f1, best_conf = float(curves.best_f1), float(curves.best_confidence)
        if best_f1 == best_f1:  # not NaN
            out[f"{self.prefix}best_f1"] = best_f1
            out[f"{self.prefix}best_f1_confidence"] = best_conf
        for beta in self.fbeta:
            fb = curves.fbeta(beta)
            if float(fb.best_fbeta) == float(fb.best_fbeta):  # not NaN
                name = f"best_f{beta:g}".replace(".", "_")
                out[f"{self.prefix}{name}"] = float(fb.best_fbeta)
                out[f"{self.prefix}{name}_confidence"] = float(fb.best_confidence)
        for name, result in zip(self.slices, scalar_names(list(self.slices)), strict=True):
            values_of = (self.last_slices or {}).get(name, {})
            for key in ("map", "map_50"):
                if key in values_of and float(values_of[key]) >= 0:
                    out[f"{self.prefix}slices/{result}/{key}"] = float(values_of[key])
        boot = self.last_bootstrap
        if boot is not None:
            for key in ("map", "map_50"):
                low, high = float(boot.low[key]), float(boot.high[key])  # type: ignore[arg-type]
                if low == low and high == high:  # not NaN
                    out[f"{self.prefix}{key}_ci_low"] = low
                    out[f"{self.prefix}{key}_ci_high"] = high
        cal = self.last_calibration
        if cal is not None and cal.n_detections > 0:
            out[f"{self.prefix}ece"] = float(cal.ece)
            out[f"{self.prefix}mce"] = float(cal.mce)
        if self.log_per_class:
            at = f"ap_{round(curves.iou_threshold * 100):d}"
            named = self._scalar_names()
            for class_id, ap in zip(curves.classes.tolist(), curves.ap.tolist(), strict=True):
                if ap >= 0:  # -1: no GT of this class
                    out[f"{self.prefix}{at}/{named.get(class_id, f'class_{class_id}')}"] = ap
        return out
