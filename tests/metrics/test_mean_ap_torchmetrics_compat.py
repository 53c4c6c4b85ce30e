"""What torchmetrics' own MeanAveragePrecision tests check beyond the numbers, ported to objdet.

TorchScript, state_dict persistence, set_dtype, the faster_coco_eval summary rule, float32
default grids, ValueError-compatible errors with torchmetrics' messages, the many-detections
warning, and the staticmethod coco_to_tm / tm_to_coco entry points.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import warnings
from copy import deepcopy

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from objdet.training.metrics import ClasswiseAP, ConfusionMatrix, MeanAveragePrecision
from objdet.training.metrics._errors import InputError
from tests.helpers.coco_reference import make_dataset, pycocotools_eval, to_torch


def _data(seed: int = 3, n: int = 10) -> tuple[list[dict], list[dict]]:
    return to_torch(make_dataset(seed, n_images=n), "xywh")


def _stats(metric: MeanAveragePrecision) -> np.ndarray:
    stats, tables = metric.coco_eval()
    return np.concatenate([stats.numpy(), tables.precision.numpy().ravel(), tables.recall.numpy().ravel()])


# ------------------------------------------------------------------ TorchScript
@pytest.mark.parametrize(
    "make",
    [
        lambda: MeanAveragePrecision(),
        lambda: MeanAveragePrecision(iou_type=("bbox", "segm"), extended_summary=True, class_metrics=True),
        lambda: MeanAveragePrecision(average="micro", class_metrics=True),
        lambda: ClasswiseAP(num_classes=5),
        lambda: ConfusionMatrix(num_classes=5),
    ],
)
def test_metrics_are_scriptable(make) -> None:  # type: ignore[no-untyped-def]
    """torchmetrics' tester scripts the metric first (postponed annotations failed as 'Tensor')."""
    metric = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        scripted = torch.jit.script(metric)
    assert isinstance(scripted, torch.jit.ScriptModule)
    # the metric itself still works, also after pickling (the tester does both)
    preds, target = to_torch(make_dataset(1, n_images=3), "xyxy")
    again = pickle.loads(pickle.dumps(metric))
    if "segm" not in getattr(again, "iou_type", ("bbox",)):
        again.update(preds, target)
        out = again.compute()
        assert (out.sum() > 0) if isinstance(out, torch.Tensor) else all(v.numel() for v in out.values())


# ------------------------------------------------------------------ persistence
def test_states_are_not_in_state_dict_unless_persistent() -> None:
    preds, target = _data()
    metric = MeanAveragePrecision(
        box_format="xywh", extended_summary=True, average="micro", class_metrics=True
    )
    metric.update(preds, target)
    assert metric.state_dict() == {}
    metric.persistent(True)
    keys = set(metric.state_dict())
    assert keys == set(metric._defaults) and "n_images" in keys and "macro_tp" in keys
    metric.persistent(False)
    assert metric.state_dict() == {}


@pytest.mark.parametrize("persistent", [False, True])
def test_mid_epoch_state_dict_round_trip(persistent: bool) -> None:
    """Save mid-epoch, load into a fresh metric, continue: persistent gives the uninterrupted result."""
    preds, target = _data(n=12)
    whole = MeanAveragePrecision(box_format="xywh", class_metrics=True)
    for a in range(0, 12, 3):
        whole.update(preds[a : a + 3], target[a : a + 3])
    first = MeanAveragePrecision(box_format="xywh", class_metrics=True)
    first.persistent(persistent)
    first.update(preds[:3], target[:3])
    first.update(preds[3:6], target[3:6])
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    fresh = MeanAveragePrecision(box_format="xywh", class_metrics=True)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    for a in range(6, 12, 3):
        fresh.update(preds[a : a + 3], target[a : a + 3])
    second_half = MeanAveragePrecision(box_format="xywh", class_metrics=True)
    second_half.update(preds[6:], target[6:])
    if persistent:
        np.testing.assert_array_equal(_stats(fresh), _stats(whole))
        assert int(fresh.n_images) == 12
    else:  # torchmetrics' default: nothing saved, the fresh metric saw only the second half
        np.testing.assert_array_equal(_stats(fresh), _stats(second_half))
        assert not np.array_equal(_stats(fresh), _stats(whole))


# ------------------------------------------------------------------ set_dtype
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.float32])
def test_set_dtype_keeps_the_state_exact(dtype: torch.dtype) -> None:
    preds, target = _data()
    metric = MeanAveragePrecision(box_format="xywh", extended_summary=True, class_metrics=True)
    metric.update(preds[:5], target[:5])
    dtypes = {
        k: [t.dtype for t in v] if isinstance(v, list) else v.dtype for k, v in metric.metric_state.items()
    }
    expected = _stats(deepcopy(metric))
    metric.set_dtype(dtype)
    assert metric.dtype == dtype
    after = {
        k: [t.dtype for t in v] if isinstance(v, list) else v.dtype for k, v in metric.metric_state.items()
    }
    assert after == dtypes  # uint8 flags, int labels and float64 scores untouched
    np.testing.assert_array_equal(_stats(metric), expected)
    out = metric.compute()
    assert out["map"].dtype == torch.float32
    metric.update(preds[5:], target[5:])  # and it keeps working
    reference = MeanAveragePrecision(box_format="xywh", extended_summary=True, class_metrics=True)
    reference.update(preds, target)
    np.testing.assert_array_equal(_stats(metric), _stats(reference))


def test_to_dtype_and_reset_keep_state_dtypes() -> None:
    preds, target = _data()
    metric = MeanAveragePrecision(box_format="xywh").to(torch.float16)
    metric.update(preds, target)
    assert metric.macro_scores[0].dtype == torch.float64 and metric.macro_tp[0].dtype == torch.uint8
    metric.set_dtype(torch.float64)
    metric.reset()
    assert metric.n_images.dtype == torch.int64
    matrix = ConfusionMatrix(num_classes=4)
    matrix.set_dtype(torch.float16)
    assert matrix.compute().dtype == torch.int64


# ------------------------------------------------------------------ backend summary rule
def _faster_coco_eval(images: list, max_dets: list[int]) -> tuple[np.ndarray, dict[int, float]]:
    """faster-coco-eval's own stats and per-class stats[0] on the generated images."""
    faster = pytest.importorskip("faster_coco_eval")
    from tests.helpers.coco_reference import _cocoeval

    reference = _cocoeval(images)  # pycocotools COCO objects; rebuild them for faster-coco-eval
    gt_dataset, dt_anns = reference.cocoGt.dataset, reference.cocoDt.dataset["annotations"]

    def evaluate(cat_ids: list[int] | None) -> np.ndarray:
        with contextlib.redirect_stdout(io.StringIO()):
            gt = faster.COCO()
            gt.dataset = deepcopy(gt_dataset)
            gt.createIndex()
            dt = gt.loadRes(deepcopy(dt_anns))
            ev = faster.COCOeval_faster(gt, dt, "bbox")
            ev.params.maxDets = list(max_dets)
            if cat_ids is not None:
                ev.params.catIds = cat_ids
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return np.array(ev.stats[:12])

    cats = sorted(c["id"] for c in gt_dataset["categories"])
    return evaluate(None), {c: float(evaluate([c])[0]) for c in cats}


@pytest.mark.parametrize("max_dets", [[1, 10, 50], [1, 10, 100], [1, 100, 1000]])
def test_faster_coco_eval_backend_reads_map_at_the_last_max_det(max_dets: list[int]) -> None:
    images = make_dataset(11, n_images=10)
    preds, target = to_torch(images, "xywh")
    faster_stats, faster_per_class = _faster_coco_eval(images, max_dets)
    metric = MeanAveragePrecision(
        box_format="xywh", max_detection_thresholds=max_dets, backend="faster_coco_eval", class_metrics=True
    )
    metric.update(preds, target)
    stats, _ = metric.coco_eval()
    np.testing.assert_allclose(stats.numpy(), faster_stats, rtol=0, atol=1e-12)
    out = metric.compute()
    classes = out["classes"].tolist()
    expected_per_class = [faster_per_class.get(c, -1.0) for c in classes]
    np.testing.assert_allclose(out["map_per_class"].numpy(), expected_per_class, rtol=0, atol=1e-6)

    # pycocotools' rule under the default backend: mAP at maxDets = 100 (-1 without it)
    default = MeanAveragePrecision(box_format="xywh", max_detection_thresholds=max_dets)
    default.update(preds, target)
    stats_default, _ = default.coco_eval()
    reference = pycocotools_eval(images, max_dets=max_dets).stats
    np.testing.assert_allclose(stats_default.numpy(), reference, rtol=0, atol=1e-12)
    if 100 not in max_dets:
        assert stats_default[0] == -1 and stats[0] > 0


def test_faster_coco_eval_backend_on_torchmetrics_example() -> None:
    """torchmetrics' test_many_detection_thresholds: 0.6 with faster_coco_eval, not 0.6 with pycocotools."""
    preds = [
        dict(
            boxes=torch.tensor([[258.0, 41, 606, 285]]),
            scores=torch.tensor([0.536]),
            labels=torch.tensor([0]),
        )
    ]
    target = [dict(boxes=torch.tensor([[214.0, 41, 562, 285]]), labels=torch.tensor([0]))]
    for backend, expected in (("faster_coco_eval", 0.6), ("pycocotools", -1.0)):
        metric = MeanAveragePrecision(max_detection_thresholds=[1, 10, 1000], backend=backend)
        res = metric(preds, target)
        assert round(res["map"].item(), 5) == expected
        assert {"mar_1", "mar_10", "mar_1000"} <= set(res)


# ------------------------------------------------------------------ float32 default grids
def _exact_hit() -> tuple[list[dict], list[dict], COCOeval]:
    """One GT and one detection with IoU exactly 0.55 (110 / 200): on pycocotools' second threshold."""
    preds = [
        dict(boxes=torch.tensor([[0.0, 0, 11, 10]]), scores=torch.tensor([0.9]), labels=torch.tensor([1]))
    ]
    target = [dict(boxes=torch.tensor([[0.0, 0, 20, 10]]), labels=torch.tensor([1]))]
    with contextlib.redirect_stdout(io.StringIO()):
        gt, dt = COCO(), COCO()
        cats = [{"id": 1}]
        gt.dataset = {
            "images": [{"id": 0}],
            "categories": cats,
            "annotations": [
                {
                    "id": 1,
                    "image_id": 0,
                    "category_id": 1,
                    "bbox": [0, 0, 20, 10],
                    "area": 200.0,
                    "iscrowd": 0,
                }
            ],
        }
        dt.dataset = {
            "images": [{"id": 0}],
            "categories": cats,
            "annotations": [
                {
                    "id": 1,
                    "image_id": 0,
                    "category_id": 1,
                    "bbox": [0, 0, 11, 10],
                    "area": 110.0,
                    "iscrowd": 0,
                    "score": 0.9,
                }
            ],
        }
        gt.createIndex()
        dt.createIndex()
    return preds, target, COCOeval(gt, dt, "bbox")


def _run(ev: COCOeval, iou_thresholds: list[float] | None = None) -> np.ndarray:
    if iou_thresholds is not None:
        ev.params.iouThrs = np.array(iou_thresholds, dtype=np.float64)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.array(ev.stats)


@pytest.mark.parametrize(
    "grid",
    [
        torch.linspace(0.5, 0.95, round((0.95 - 0.5) / 0.05) + 1).tolist(),  # torchmetrics' default
        torch.tensor(np.linspace(0.5, 0.95, 10)).float().tolist(),  # the float32 rounding
        None,
    ],
)
def test_float32_default_iou_grid_counts_as_pycocotools_default(grid: list[float] | None) -> None:
    preds, target, ev = _exact_hit()
    reference = _run(ev)
    assert reference[0] == pytest.approx(0.2)  # matched at 0.50 and 0.55 only
    metric = MeanAveragePrecision(
        iou_thresholds=grid, rec_thresholds=torch.linspace(0.0, 1.0, round(1.0 / 0.01) + 1).tolist()
    )
    assert metric.iou_thresholds == np.linspace(0.5, 0.95, 10).tolist()
    assert metric.rec_thresholds == np.linspace(0.0, 1.0, 101).tolist()
    metric.update(preds, target)
    np.testing.assert_allclose(metric.coco_eval()[0].numpy(), reference, rtol=0, atol=1e-12)


def test_a_custom_grid_is_used_as_given() -> None:
    """A float32 0.55 alone is no default grid: an IoU of exactly 0.55 misses it, as in pycocotools."""
    preds, target, ev = _exact_hit()
    grid = [0.5, float(np.float32(0.55))]
    reference = _run(ev, grid)
    assert reference[0] == pytest.approx(0.5)
    metric = MeanAveragePrecision(iou_thresholds=grid)
    assert metric.iou_thresholds == grid
    metric.update(preds, target)
    np.testing.assert_allclose(metric.coco_eval()[0].numpy(), reference, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ errors
def test_constructor_errors_are_value_and_type_errors_with_torchmetrics_messages() -> None:
    with pytest.raises(ValueError, match="Expected argument `class_metrics` to be a boolean"):
        MeanAveragePrecision(class_metrics=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Expected argument `extended_summary` to be a boolean"):
        MeanAveragePrecision(extended_summary="yes")  # type: ignore[arg-type]
    for mdt in ([1, 10], [1, 10, 50, 100]):
        with pytest.raises(
            ValueError, match="When providing a list of max detection thresholds it should have length 3"
        ):
            MeanAveragePrecision(max_detection_thresholds=mdt)
    cases = [
        dict(box_format="xyxz"),
        dict(iou_type="keypointz"),
        dict(iou_thresholds=0.5),
        dict(rec_thresholds=[0.5, 0.2]),
        dict(max_detection_thresholds=[1, 10, 0]),
        dict(average="weighted"),
        dict(backend="hotcoco"),
    ]
    for kwargs in cases:
        with pytest.raises(InputError):
            MeanAveragePrecision(**kwargs)  # type: ignore[arg-type]
    for make in (
        lambda: ClasswiseAP(num_classes=0),
        lambda: ConfusionMatrix(num_classes=2, iou_threshold=2.0),
    ):
        with pytest.raises(InputError) as info:
            make()
        assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    with pytest.raises(InputError, match="iou_type"):
        MeanAveragePrecision().coco_eval(iou_type="segm")


# ------------------------------------------------------------------ many detections
def _many(n: int, labels: torch.Tensor | None = None) -> tuple[list[dict], list[dict]]:
    preds = [
        dict(
            boxes=torch.tensor([[0.5, 0.5, 1, 1]]).repeat(n, 1),
            scores=torch.linspace(0.1, 1.0, n),
            labels=torch.zeros(n, dtype=torch.int64) if labels is None else labels,
        )
    ]
    return preds, [dict(boxes=torch.tensor([[0.0, 0, 1, 1]]), labels=torch.tensor([0]))]


def test_warns_on_more_detections_than_the_last_max_det() -> None:
    metric = MeanAveragePrecision()
    with pytest.warns(UserWarning, match="Encountered more than 100 detections in a single image") as record:
        metric.update(*_many(101))
    assert len([w for w in record if "Encountered" in str(w.message)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metric.update(*_many(100))  # at the limit: no warning
        MeanAveragePrecision(max_detection_thresholds=[1, 5, 300]).update(*_many(101))
        quiet = MeanAveragePrecision()
        quiet.warn_on_many_detections = False
        quiet.update(*_many(150))
    with pytest.warns(UserWarning, match="more than 50 detections"):
        MeanAveragePrecision(max_detection_thresholds=[1, 10, 50]).update(*_many(51))


def test_warns_on_many_masks_for_segm() -> None:
    n = 101
    preds = [
        dict(masks=torch.ones(n, 4, 4, dtype=torch.bool), scores=torch.rand(n), labels=torch.arange(n) % 10)
    ]
    target = [dict(masks=torch.ones(1, 4, 4, dtype=torch.bool), labels=torch.tensor([0]))]
    with pytest.warns(UserWarning, match="Encountered more than 100 detections"):
        MeanAveragePrecision(iou_type="segm").update(preds, target)


# ------------------------------------------------------------------ coco_to_tm / tm_to_coco entry points
def test_coco_to_tm_is_callable_on_the_class_and_an_instance(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from objdet.io import tm_to_coco

    preds, target = _data(n=3)
    tm_to_coco(preds, target, str(tmp_path / "x"), box_format="xywh")
    files = (str(tmp_path / "x_preds.json"), str(tmp_path / "x_target.json"))
    a = MeanAveragePrecision().coco_to_tm(*files, iou_type="bbox")
    b = MeanAveragePrecision.coco_to_tm(*files, iou_type=["bbox"], backend="faster_coco_eval")
    assert len(a[1]) == len(b[1]) == sum(1 for t in target if len(t["labels"]))
    with pytest.raises(RuntimeError, match=r"objdet\.io\.tm_to_coco\(preds, target"):
        MeanAveragePrecision().tm_to_coco("x")


def test_functional_mean_average_precision_is_the_metric_run_once() -> None:
    from objdet.training.metrics import mean_average_precision

    images = make_dataset(5, n_images=8)
    preds, target = to_torch(images, "xywh")
    kwargs = dict(
        box_format="xywh", class_metrics=True, iou_thresholds=[0.3, 0.6], max_detection_thresholds=[1, 5, 50]
    )
    out = mean_average_precision(preds, target, backend="faster_coco_eval", **kwargs)
    metric = MeanAveragePrecision(backend="faster_coco_eval", **kwargs)
    metric.update(preds[:3], target[:3])
    metric.update(preds[3:], target[3:])
    for key, value in metric.compute().items():
        torch.testing.assert_close(out[key], value, rtol=0, atol=0)
    default = mean_average_precision(preds, target, box_format="xywh")
    np.testing.assert_allclose(
        torch.stack([default[k] for k in list(default)[:12]]).numpy(),
        pycocotools_eval(images).stats,
        atol=1e-6,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean_average_precision(*_many(101), warn_on_many_detections=False)
    with pytest.warns(UserWarning, match="Encountered more than 100"):
        mean_average_precision(*_many(101))


def test_many_detections_warning_is_shown_once_not_every_batch() -> None:
    import warnings

    metric = MeanAveragePrecision(max_detection_thresholds=[1, 10, 20])
    target = {"boxes": torch.tensor([[0.0, 0.0, 5.0, 5.0]]), "labels": torch.tensor([0])}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's usual filter: each distinct warning once
        for n in range(21, 26):  # a different number of detections in every batch
            boxes = torch.rand(n, 4) * 10
            boxes[:, 2:] += boxes[:, :2]
            many = {"boxes": boxes, "scores": torch.rand(n), "labels": torch.zeros(n, dtype=torch.long)}
            metric.update([target | {"scores": torch.ones(1)}, many], [target, target])
    texts = [str(w.message) for w in caught if "detections in a single image" in str(w.message)]
    assert len(texts) == 1, texts
