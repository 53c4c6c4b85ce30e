"""LVISMeanAveragePrecision against the LVIS API (lvis 0.5.3) on generated federated cases."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from objdet.training.metrics import InputError, LVISMeanAveragePrecision
from tests.helpers.lvis_reference import LvisCase, lvis_eval, make_lvis_case

#: every test here runs on both engines (compiled CPU loops and torch kernels)
pytestmark = [
    pytest.mark.usefixtures("engine"),
    pytest.mark.filterwarnings("ignore:Encountered more than"),
    pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated"),
    pytest.mark.filterwarnings("ignore:The ``compute`` method"),
]

TOL = 1e-9


def _run(
    case: LvisCase, iou_type: str = "bbox", batch: int = 3, **kwargs: object
) -> LVISMeanAveragePrecision:
    metric = LVISMeanAveragePrecision(
        box_format="xywh",
        iou_type=iou_type,
        frequencies=case.frequencies,
        **kwargs,  # type: ignore[arg-type]
    )
    for k in range(0, len(case.preds), batch):
        metric.update(case.preds[k : k + batch], case.target[k : k + batch])
    return metric


def _check(metric: LVISMeanAveragePrecision, ref: dict, ev: object, what: str) -> None:
    ours = metric.lvis_results()
    assert list(ours) == list(ref), what
    for key, value in ref.items():
        assert abs(ours[key] - float(value)) <= TOL, f"{what} {key}: {ours[key]} != LVIS API {value}"
    # the tables too, class by class (the LVIS API's K is every category of the file)
    _, tables = metric.coco_eval()
    precision, recall = ev.eval["precision"], ev.eval["recall"]  # type: ignore[attr-defined]
    cat_ids = ev.params.cat_ids  # type: ignore[attr-defined]
    ours_k = tables.classes.tolist()
    for k, cat in enumerate(cat_ids):
        if cat in ours_k:
            j = ours_k.index(cat)
            np.testing.assert_allclose(tables.precision[:, :, j, :, 0].numpy(), precision[:, :, k], atol=TOL)
            np.testing.assert_allclose(tables.recall[:, j, :, 0].numpy(), recall[:, k], atol=TOL)
        else:  # no GT and no evaluated detection: undefined on both sides
            assert (precision[:, :, k] == -1).all() and (recall[:, k] == -1).all()


@pytest.mark.parametrize("seed", range(4))
def test_bbox_matches_the_lvis_api(seed: int, tmp_path: Path) -> None:
    case = make_lvis_case(seed)
    ref, ev = lvis_eval(case.gt, case.results, "bbox", tmp_path)
    assert ref["AP"] > 0 and min(ref[k] for k in ("APr", "APc", "APf")) > -1
    _check(_run(case), ref, ev, f"seed {seed}")


@pytest.mark.parametrize("seed", range(2))
def test_segm_matches_the_lvis_api(seed: int, tmp_path: Path) -> None:
    case = make_lvis_case(seed, segm=True, n_images=10, size=80)
    ref, ev = lvis_eval(case.gt, case.results, "segm", tmp_path)
    assert ref["AP"] > 0
    _check(_run(case, "segm"), ref, ev, f"segm seed {seed}")


def test_compute_keys_and_per_class_values(tmp_path: Path) -> None:
    case = make_lvis_case(7)
    ref, ev = lvis_eval(case.gt, case.results, "bbox", tmp_path)
    out = _run(case, class_metrics=True).compute()
    names = ["map", "map_50", "map_75", "map_small", "map_medium", "map_large", "map_rare", "map_common",
             "map_frequent", "mar_300", "mar_small", "mar_medium", "mar_large"]  # fmt: skip
    for name, key in zip(names, ref, strict=True):
        assert out[name].dtype == torch.float32
        assert abs(out[name].item() - ref[key]) < 1e-6, name
    precision = ev.eval["precision"][:, :, :, 0]
    for cls, ap in zip(out["classes"].tolist(), out["map_per_class"].tolist(), strict=True):
        p = precision[:, :, ev.params.cat_ids.index(cls)]
        assert abs(ap - (p[p > -1].mean() if (p > -1).any() else -1.0)) < 1e-6


@pytest.mark.parametrize("iou_threshold", [None, 0.5])
def test_lvis_classwise_ap_equals_the_lvis_api_per_category(
    tmp_path: Path, iou_threshold: float | None
) -> None:
    from objdet.training.metrics import LVISClasswiseAP

    case = make_lvis_case(5)
    _, ev = lvis_eval(case.gt, case.results, "bbox", tmp_path)
    n = max(ev.params.cat_ids) + 1  # labels are the category ids; label 0 is never used
    metric = LVISClasswiseAP(n, iou_threshold=iou_threshold, box_format="xywh", frequencies=case.frequencies)
    metric.update(case.preds, case.target)
    out = metric.compute()
    assert out["class_0_AP"].item() == -1.0
    t = slice(None) if iou_threshold is None else slice(0, 1)  # LVIS' first threshold is 0.5
    checked = 0
    for k, cat in enumerate(ev.params.cat_ids):
        p = ev.eval["precision"][t, :, k, 0]
        expected = p[p > -1].mean() if (p > -1).any() else -1.0
        assert out[f"class_{cat}_AP"].item() == pytest.approx(expected, abs=1e-6), cat
        checked += expected > 0
    assert checked >= 3


def test_more_than_300_detections_in_an_image_keep_the_best_300(tmp_path: Path) -> None:
    case = make_lvis_case(0)
    assert max(len(p["scores"]) for p in case.preds) > 300
    ref, ev = lvis_eval(case.gt, case.results, "bbox", tmp_path)
    _check(_run(case), ref, ev, "cap")
    # without the cap the numbers differ on this case: the test can fail
    uncapped = _run(case, max_detections=1000).lvis_results()
    assert abs(uncapped["AP"] - ref["AP"]) > 1e-6


def test_without_frequencies_the_group_aps_are_undefined() -> None:
    case = make_lvis_case(1)
    metric = LVISMeanAveragePrecision(box_format="xywh")
    metric.update(case.preds, case.target)
    out = metric.compute()
    assert out["map_rare"] == -1 and out["map_common"] == -1 and out["map_frequent"] == -1
    assert out["map"] > 0
    partial = LVISMeanAveragePrecision(box_format="xywh", frequencies={1: "r"})
    partial.update(case.preds, case.target)
    with pytest.raises(InputError, match="frequencies"):
        partial.compute()


def test_no_image_gives_minus_one() -> None:
    out = LVISMeanAveragePrecision().compute()
    assert out["map"] == -1 and out["mar_300"] == -1 and out["map_rare"] == -1


def _lists(neg: object = (), ne: object = ()) -> dict:
    box = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    return dict(boxes=box, labels=torch.tensor([1]), neg_category_ids=neg, not_exhaustive_category_ids=ne)


def test_bad_inputs_name_the_field() -> None:
    metric = LVISMeanAveragePrecision()
    pred = dict(
        boxes=torch.tensor([[0.0, 0.0, 10.0, 10.0]]), scores=torch.tensor([0.5]), labels=torch.tensor([1])
    )
    target = _lists(torch.tensor([], dtype=torch.int64), [])
    del target["not_exhaustive_category_ids"]
    with pytest.raises(InputError, match=r"target\[1\] has no key 'not_exhaustive_category_ids'"):
        metric.update([pred, pred], [_lists([], []), target])
    with pytest.raises(InputError, match=r"target\[0\]\['neg_category_ids'\]"):
        metric.update([pred], [_lists("cat")])
    with pytest.raises(InputError, match=r"target\[0\]\['neg_category_ids'\] must be 1-D"):
        metric.update([pred], [_lists(torch.zeros(2, 2, dtype=torch.int64))])
    with pytest.raises(InputError, match=r"target\[0\]\['not_exhaustive_category_ids'\] must hold integer"):
        metric.update([pred], [_lists([], torch.tensor([1.5]))])
    with pytest.raises(InputError, match=r"target\[0\]\['iscrowd'\]"):
        metric.update([pred], [{**_lists(), "iscrowd": torch.tensor([1])}])
    with pytest.raises(InputError, match="keypoints"):
        LVISMeanAveragePrecision(iou_type="keypoints")
    with pytest.raises(InputError, match="max_detections"):
        LVISMeanAveragePrecision(max_detections=0)
    with pytest.raises(InputError, match="frequencies"):
        LVISMeanAveragePrecision(frequencies={1: "x"})
    assert int(metric.n_images) == 0  # nothing was counted by the failed updates


def test_state_bytes_per_detection() -> None:
    case = make_lvis_case(3, crowded_image=False)
    metric = _run(case, batch=100)
    det_states = ("scores", "labels", "rank", "tp", "ignored")
    n_det = metric._state("macro_scores").shape[0]
    per_det = sum(metric._state(f"macro_{s}").element_size() * metric._state(f"macro_{s}")[:1].numel()
                  for s in det_states)  # fmt: skip
    assert n_det > 0 and per_det == 23  # float64 score, int32 class, uint8 rank, 5 + 5 flag bytes


def _ids_case() -> LvisCase:
    return make_lvis_case(5, n_images=9, crowded_image=False)


_CASE = None


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_batch_splits_and_image_order_do_not_change_the_result(data: st.DataObject) -> None:
    global _CASE
    _CASE = _CASE or _ids_case()
    case = _CASE
    reference = _run(case, batch=len(case.preds)).lvis_results()
    order = data.draw(st.permutations(range(len(case.preds))))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(order) - 1), max_size=4)))
    metric = LVISMeanAveragePrecision(box_format="xywh", frequencies=case.frequencies)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True):
            metric.update([case.preds[i] for i in order[a:b]], [case.target[i] for i in order[a:b]])
    assert metric.lvis_results() == reference
