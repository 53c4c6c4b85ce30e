"""Figures of the docs, drawn at build time by objdet's own plotting code (``docs/conf.py`` calls it).

Each function writes one PNG into ``docs/_generated/`` (not tracked); the pages show them with
``{figure}``. The data are small generated examples, so a build takes a few seconds.
To add a figure: write ``def fig_<name>(out: Path) -> None`` here; ``draw_all`` finds it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from objdet.plotting.anomaly import plot_anomaly_heatmap
from objdet.plotting.variance import plot_pca_scatter
from objdet.training.metrics import (
    TIDE,
    AnomalyDetectionMetrics,
    ComponentOrthogonalityMetric,
    ConfusionMatrix,
    ExplainedVarianceMetric,
    MeanAveragePrecision,
    ScoreStatisticsMetric,
)

DPI = 100


def _save(fig: Any, path: Path) -> None:
    if not isinstance(fig, Figure):  # torchmetrics' plot helpers hand back their own figure type
        fig = fig.figure
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    fig.clear()


def anomaly_maps(n: int = 6, size: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth noise maps with two elliptic anomalous blobs each, scores raised inside the blobs."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    target = torch.zeros(n, size, size, dtype=torch.bool)
    for i in range(n):
        for _ in range(2):
            cy, cx = torch.randint(10, size - 10, (2,), generator=g).tolist()
            ry, rx = (torch.rand(2, generator=g) * 6 + 4).tolist()
            target[i] |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    noise = F.avg_pool2d(torch.randn(n, 1, size, size, generator=g), 5, stride=1, padding=2).squeeze(1)
    scores = 3.0 * noise + 2.0 * target + 0.3 * torch.randn(n, size, size, generator=g)
    return scores, target


def fig_anomaly_histogram(out: Path) -> None:
    scores, target = anomaly_maps()
    metric = AnomalyDetectionMetrics(threshold=1.0)
    metric.update(scores, target)
    fig, _ = metric.plot()
    _save(fig, out)


def fig_anomaly_heatmap(out: Path) -> None:
    scores, target = anomaly_maps()
    image = 0.5 + 0.15 * F.avg_pool2d(scores[:1, None], 9, stride=1, padding=4)[0, 0]
    fig, _ = plot_anomaly_heatmap(scores[0], image=image, target=target[0], threshold=1.0)
    _save(fig, out)


def fig_score_statistics(out: Path) -> None:
    scores, _ = anomaly_maps()
    metric = ScoreStatisticsMetric(quantiles=(0.5, 0.95, 0.99))
    metric.update(scores)
    fig, _ = metric.plot()
    _save(fig, out)


def _features(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (1500,), generator=g)
    centres = torch.tensor(
        [[4.0, 0.0, 0.0, 0.0, 0.0, 0.0], [-2.0, 3.0, 0.0, 0.0, 0.0, 0.0], [-2.0, -3.0, 1.0, 0, 0, 0]]
    )
    x = centres[labels] + torch.randn(1500, 6, generator=g) * torch.tensor([1.5, 1.2, 0.8, 0.5, 0.3, 0.1])
    return x, labels


def fig_scree(out: Path) -> None:
    x, _ = _features()
    metric = ExplainedVarianceMetric(n_components=2)
    metric.update(x)
    fig, _ = metric.plot()
    _save(fig, out)


def fig_pca_scatter(out: Path) -> None:
    x, labels = _features()
    metric = ExplainedVarianceMetric()
    metric.update(x)
    mean, evals, components = metric.pca()
    fig, _ = plot_pca_scatter(
        x, mean, components, evals / evals.sum(), labels=labels, class_names={0: "a", 1: "b", 2: "c"}
    )
    _save(fig, out)


def fig_orthogonality(out: Path) -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.linalg.qr(torch.randn(8, 5, generator=g)).Q.T  # 5 orthonormal rows of length 8
    w[3] = 0.8 * w[3] + 0.6 * w[1]  # ... but row 3 leans on row 1
    metric = ComponentOrthogonalityMetric()
    metric.update(w)
    fig, _ = metric.plot()
    _save(fig, out)


#: The worked example of the confusion-matrix guide (rows: ground truth, columns: predictions).
CM_NAMES = ["cat", "dog", "car", "background"]
CM_EXAMPLE = np.array([[1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 1, 0, 0]])


def fig_confusion_matrix_layout(out: Path) -> None:
    """The layout of a detection confusion matrix, filled with the guide's worked example."""
    fig = Figure(figsize=(6.4, 5.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    n = len(CM_NAMES)
    shade = np.zeros((n, n))
    shade[:-1, :-1] = 1  # class x class
    shade[np.arange(n - 1), np.arange(n - 1)] = 2  # correct class
    shade[-1, :] = 3  # background row: false positives
    shade[:, -1] = 4  # background column: false negatives
    shade[-1, -1] = 0
    colors = np.array(
        [[1, 1, 1], [0.93, 0.93, 0.93], [0.78, 0.9, 0.78], [0.98, 0.8, 0.78], [0.8, 0.86, 0.98]]
    )
    ax.imshow(colors[shade.astype(int)], interpolation="nearest")
    for i in range(n):
        for j in range(n):
            text = "0 (always)" if i == j == n - 1 else str(CM_EXAMPLE[i, j])
            ax.text(j, i, text, ha="center", va="center", fontsize=12 if i != j or i < n - 1 else 9)
    ax.set_xticks(range(n), CM_NAMES, rotation=30, ha="left", rotation_mode="anchor")
    ax.set_yticks(range(n), CM_NAMES)
    ax.set_xlabel("predicted class (columns)")
    ax.set_ylabel("ground-truth class (rows)")
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    ax.set_xticks(np.arange(n + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="0.5", linewidth=0.8)
    ax.tick_params(which="minor", length=0)
    ax.annotate(
        "row 'background': detections that matched\nno ground truth = false positives",
        xy=(1, n - 1),
        xytext=(0.0, n + 0.15),
        fontsize=9,
        color="#a33",
        arrowprops={"arrowstyle": "->", "color": "#a33"},
        annotation_clip=False,
    )
    ax.annotate(
        "column 'background': ground truths\nmatched by no detection = false negatives",
        xy=(n - 0.8, 1.2),
        xytext=(n - 0.3, 1.9),
        fontsize=9,
        color="#35a",
        arrowprops={"arrowstyle": "->", "color": "#35a"},
        annotation_clip=False,
    )
    _save(fig, out)


#: The two-object scene of the matching figure (xyxy): a dog GT, a cat GT overlapping it and two detections.
MATCH_GTS = [([0, 0, 10, 10], 1), ([0, 0, 10, 6], 0)]  # (box, class): dog, cat
MATCH_DETS = [([0, 0, 10, 9], 0, 0.9), ([0, 4, 10, 10], 1, 0.8)]  # (box, class, score): "cat", "dog"


def fig_confusion_matrix_matching(out: Path) -> None:
    """The same image matched with matching="agnostic" and "class_first": boxes, pairs and matrices."""
    from matplotlib.patches import Rectangle as Box

    from objdet.plotting.detection import plot_confusion_matrix

    names = ["cat", "dog"]
    preds = [
        {
            "boxes": torch.tensor([b for b, _, _ in MATCH_DETS], dtype=torch.float64),
            "scores": torch.tensor([s for _, _, s in MATCH_DETS], dtype=torch.float64),
            "labels": torch.tensor([c for _, c, _ in MATCH_DETS]),
        }
    ]
    target = [
        {
            "boxes": torch.tensor([b for b, _ in MATCH_GTS], dtype=torch.float64),
            "labels": torch.tensor([c for _, c in MATCH_GTS]),
        }
    ]
    fig = Figure(figsize=(11.0, 7.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2, gridspec_kw={"height_ratios": [1.0, 1.15]})
    for col, mode in enumerate(("agnostic", "class_first")):
        metric = ConfusionMatrix(num_classes=2, conf_threshold=0.0, class_names=names, matching=mode)
        metric.update(preds, target)
        from objdet.ops.boxes import box_convert
        from objdet.ops.confusion import greedy_match

        match = greedy_match(
            torch.zeros(2, dtype=torch.int64),
            preds[0]["scores"],
            box_convert(preds[0]["boxes"], "xyxy", "xywh"),
            torch.zeros(2, dtype=torch.int64),
            box_convert(target[0]["boxes"], "xyxy", "xywh"),
            torch.zeros(2, dtype=torch.bool),
            0.5,
            matching=mode,
            det_label=preds[0]["labels"],
            gt_label=target[0]["labels"],
        )
        ax = axes[0, col]
        for g, (box, cls) in enumerate(MATCH_GTS):
            ax.add_patch(
                Box((box[0], box[1]), box[2] - box[0], box[3] - box[1], fill=False, lw=2.5, ec="#2a7", ls="-")
            )
            ax.text(box[2] + 0.2, box[1] + 0.5 + 1.2 * g, f"GT {g}: {names[cls]}", color="#2a7", fontsize=10)
        for d, (box, cls, score) in enumerate(MATCH_DETS):
            ax.add_patch(
                Box(
                    (box[0] + 0.15, box[1] + 0.15),
                    box[2] - box[0] - 0.3,
                    box[3] - box[1] - 0.3,
                    fill=False,
                    lw=1.8,
                    ec="#c33",
                    ls="--",
                )
            )
            g = int(match.det_to_gt[d])
            paired = f"→ GT {g} ({names[MATCH_GTS[g][1]]})" if g >= 0 else "→ no GT: false positive"
            ax.text(
                box[2] + 0.2,
                box[1] + 3.2 + 1.2 * d,
                f"det {d}: {names[cls]} {score:g} {paired}",
                color="#c33",
                fontsize=10,
            )
        ax.set_xlim(-0.5, 26)
        ax.set_ylim(10.8, -0.8)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f'matching="{mode}"', fontsize=12)
        plot_confusion_matrix(metric.compute(), names, ax=axes[1, col], title=" ")
    fig.suptitle(
        "det 0 (cat) overlaps the dog GT more (IoU 0.90) than the cat GT (IoU 0.67); det 1 (dog) overlaps "
        "only the dog GT (IoU 0.60)",
        fontsize=10,
    )
    _save(fig, out)


#: Classes of the simulated detector of the detection figures.
DET_NAMES = ["person", "car", "truck", "bicycle", "dog", "cat"]


@functools.cache
def detections(n_images: int = 300, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """A simulated detector on 640 x 480 images with the six classes of ``DET_NAMES``.

    Classes differ in frequency and difficulty; small objects are missed more often; cars and
    trucks, dogs and cats (and bicycles as persons) get confused; some boxes are badly placed,
    some objects detected twice, and every image has a few low-scoring detections on
    background. Returns (preds, target) in torchmetrics' format, xyxy float64.
    """
    rng = np.random.default_rng(seed)
    freq = np.array([0.34, 0.26, 0.1, 0.1, 0.1, 0.1])
    found = np.array([0.92, 0.9, 0.8, 0.7, 0.85, 0.82])  # detection rate of a large object
    partner = {1: 2, 2: 1, 4: 5, 5: 4, 3: 0}  # the class it is mistaken for ...
    confused = {1: 0.08, 2: 0.25, 4: 0.15, 5: 0.18, 3: 0.1}  # ... and how often
    preds, target = [], []
    for _ in range(n_images):
        m = int(rng.integers(1, 9))
        labels = rng.choice(6, m, p=freq)
        size = np.exp(rng.uniform(np.log(12), np.log(260), (m, 1))) * rng.uniform(0.6, 1.6, (m, 2))
        xy = rng.uniform(0, 1, (m, 2)) * (np.array([640.0, 480.0]) - size)
        gt = np.concatenate([xy, xy + size], 1)
        crowd = (labels == 0) & (rng.random(m) < 0.03)
        boxes, scores, det_labels = [], [], []
        for box, label, side in zip(gt, labels, np.sqrt(size.prod(1)), strict=True):
            if rng.random() > found[label] / (1 + np.exp(-(side - 24) / 8)):
                continue  # missed: more often when small
            wrong = label in partner and rng.random() < confused[label]
            poor = rng.random() < 0.12
            noise = rng.normal(0, (0.2 if poor else 0.05) * side, 4)
            boxes.append(box + noise)
            det_labels.append(partner[label] if wrong else label)
            scores.append(rng.beta(3, 3) if wrong or poor else rng.beta(7, 2))
            if rng.random() < 0.08:  # a duplicate, lower and looser
                boxes.append(box + rng.normal(0, 0.12 * side, 4))
                det_labels.append(label)
                scores.append(scores[-1] * rng.uniform(0.3, 0.8))
        for _ in range(rng.poisson(1.2)):  # detections on background
            xy0 = rng.uniform(0, 560, 2)
            boxes.append(np.concatenate([xy0, xy0 + rng.uniform(10, 80, 2)]))
            det_labels.append(int(rng.choice(6, p=freq)))
            scores.append(rng.beta(1.5, 5))
        det = np.array(boxes).reshape(-1, 4)
        det[:, 2:] = np.maximum(det[:, 2:], det[:, :2] + 1)
        preds.append(
            {
                "boxes": torch.from_numpy(det),
                "scores": torch.tensor(scores, dtype=torch.float64),
                "labels": torch.tensor(det_labels, dtype=torch.int64),
            }
        )
        target.append(
            {
                "boxes": torch.from_numpy(gt),
                "labels": torch.from_numpy(labels),
                "iscrowd": torch.from_numpy(crowd.astype(np.int64)),
            }
        )
    return preds, target


@functools.cache
def detection_metric() -> MeanAveragePrecision:
    preds, target = detections()
    metric = MeanAveragePrecision(class_metrics=True)
    metric.update(preds, target)
    return metric


def detection_confusion_matrix() -> ConfusionMatrix:
    preds, target = detections()
    metric = ConfusionMatrix(num_classes=len(DET_NAMES), class_names=DET_NAMES)
    metric.update(preds, target)
    return metric


def fig_confusion_matrix(out: Path) -> None:
    fig, _ = detection_confusion_matrix().plot()
    _save(fig, out)


def fig_confusion_matrix_normalized(out: Path) -> None:
    fig, _ = detection_confusion_matrix().plot(normalize="true")
    _save(fig, out)


def fig_tide(out: Path) -> None:
    """TIDE's bars for the simulated detector of ``detections()``."""
    preds, target = detections()
    metric = TIDE()
    metric.update(preds, target)
    fig, _ = metric.plot()
    _save(fig, out)


def fig_detections_with_masks(out: Path) -> None:
    """plot_detections with masks: discs and squares, detections shifted, one missed, one wrong class."""
    from objdet.plotting.images import plot_detections

    size = 96
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    g = torch.Generator().manual_seed(1)
    images, preds, targets = [], [], []
    for k in range(3):
        gt_masks, dt_masks, labels = [], [], []
        for j in range(3):
            cy, cx = 20 + 28 * j, 20 + 20 * ((j + k) % 3)
            r = 9 + 3 * ((j + k) % 2)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
            square = ((yy - cy).abs() <= r - 2) & ((xx - cx).abs() <= r - 2)
            gt_masks.append(disc if j != 1 else square)
            dy, dx = torch.randint(-4, 5, (2,), generator=g).tolist()
            dt_masks.append(torch.roll(gt_masks[-1], shifts=(dy, dx), dims=(0, 1)))
            labels.append(j)
        gt = torch.stack(gt_masks)
        dt = torch.stack(dt_masks[: 3 - (k == 2)])  # the last image misses one object
        dt_labels = torch.tensor(labels[: dt.shape[0]])
        if k == 1:
            dt_labels[0] = 2  # a classification error
        image = 0.25 + 0.1 * torch.rand(3, size, size, generator=g)
        image[:, gt.any(0)] += 0.3
        images.append(image.clamp(0, 1))
        preds.append(
            {
                "boxes": _mask_boxes(dt),
                "masks": dt,
                "scores": torch.tensor([0.9, 0.75, 0.6][: dt.shape[0]]),
                "labels": dt_labels,
            }
        )
        targets.append({"boxes": _mask_boxes(gt), "masks": gt, "labels": torch.tensor(labels)})
    fig, _ = plot_detections(images, preds, targets, class_names=["disc", "square", "ring"], ncols=3)
    _save(fig, out)


def _mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """xyxy boxes around (N, H, W) bool masks."""
    ends = []
    for on in (masks.any(1), masks.any(2)):  # columns, then rows, that hold a pixel of the mask
        index = torch.arange(on.shape[1])
        ends.append((torch.where(on, index, on.shape[1]).amin(1), torch.where(on, index, -1).amax(1) + 1))
    (x1, x2), (y1, y2) = ends
    return torch.stack([x1, y1, x2, y2], 1).float()


def fig_pr_curves(out: Path) -> None:
    fig, _ = detection_metric().plot(kind="pr", class_names=DET_NAMES)
    _save(fig, out)


def fig_f1_confidence(out: Path) -> None:
    fig, _ = detection_metric().plot(kind="f1", class_names=DET_NAMES)
    _save(fig, out)


def fig_precision_confidence(out: Path) -> None:
    fig, _ = detection_metric().plot(kind="precision", class_names=DET_NAMES)
    _save(fig, out)


def fig_recall_confidence(out: Path) -> None:
    fig, _ = detection_metric().plot(kind="recall", class_names=DET_NAMES)
    _save(fig, out)


def fig_ap_bars(out: Path) -> None:
    fig, _ = detection_metric().plot(kind="ap", class_names=DET_NAMES)
    _save(fig, out)


def fig_reliability_diagram(out: Path) -> None:
    fig, _ = detection_metric().plot_calibration()
    _save(fig, out)


def fig_f2_confidence(out: Path) -> None:
    from objdet.plotting.detection import plot_detection_curves

    fig, _ = plot_detection_curves(detection_metric().curves(), "f1", DET_NAMES, beta=2.0)
    _save(fig, out)


def _tagged() -> MeanAveragePrecision:
    """The simulated detector's images with ids and two slices: crowded (5+ objects) and sparse."""
    preds, target = detections()
    tagged = [
        {**t, "image_id": i, "slices": {"crowded"} if len(t["labels"]) >= 5 else {"sparse"}}
        for i, t in enumerate(target)
    ]
    metric = MeanAveragePrecision(class_metrics=True, slices=["crowded", "sparse"])
    metric.update(preds, tagged)
    return metric


def fig_slice_bars(out: Path) -> None:
    from objdet.plotting.detection import plot_slice_bars

    metric = _tagged()
    slices = metric.compute_slices({"first 100 images": list(range(100))})
    fig, _ = plot_slice_bars(slices, overall=float(metric.compute()["map"]))
    _save(fig, out)


def fig_bootstrap_intervals(out: Path) -> None:
    from objdet.plotting.detection import plot_bootstrap_intervals

    fig, _ = plot_bootstrap_intervals(_tagged().bootstrap(n_resamples=500, seed=0), DET_NAMES)
    _save(fig, out)


def fig_cli_demo_confusion_matrix(out: Path) -> None:
    """What ``objdet eval --demo --out DIR`` writes (the command line run in-process)."""
    import shutil
    import tempfile

    from objdet.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        if main(["eval", "--demo", "-q", "--out", tmp]) != 0:
            raise RuntimeError("objdet eval --demo failed")
        shutil.copy(Path(tmp) / "confusion_matrix.png", out)


def figures() -> dict[str, Callable[[Path], None]]:
    return {
        name[4:]: fn for name, fn in sorted(globals().items()) if name.startswith("fig_") and callable(fn)
    }


#: COCO's person skeleton (pairs of keypoint indices, 0-based), for drawing poses
SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip


def fig_keypoint_oks(out: Path) -> None:
    """Poses of the keypoint demo: one image's ground truth and detections, each with its best OKS."""
    from objdet.data import demo_files
    from objdet.io import load_coco_dt, load_coco_gt
    from objdet.ops import keypoint_oks

    gt = load_coco_gt(demo_files("keypoints")[0], iou_type="keypoints")
    preds = load_coco_dt(demo_files("keypoints")[1], gt)
    image = 3
    t, p = gt.target[image], preds[image]
    oks = keypoint_oks(p["keypoints"], t["keypoints"], t["area"], gt_boxes=t["boxes"])
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for g, pose in enumerate(t["keypoints"]):
        seen = pose[:, 2] > 0
        for a, b in SKELETON:
            if seen[a] and seen[b]:
                ax.plot(pose[[a, b], 0], pose[[a, b], 1], color="0.35", lw=3, alpha=0.5, zorder=1)
        ax.scatter(
            pose[seen, 0],
            pose[seen, 1],
            s=18,
            color="0.2",
            zorder=2,
            label="ground truth" if g == 0 else None,
        )
    colors = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a"]
    for d, pose in enumerate(p["keypoints"]):
        best = oks[d].max().item() if oks.shape[1] else 0.0
        color = colors[d % len(colors)]
        for a, b in SKELETON:
            ax.plot(pose[[a, b], 0], pose[[a, b], 1], color=color, lw=1.2, zorder=3)
        label = f"detection {d} (score {p['scores'][d].item():.2f}): OKS {best:.2f}"
        ax.scatter(pose[:, 0], pose[:, 1], s=8, color=color, zorder=4, label=label)
    ax.set_xlim(0, 320)
    ax.set_ylim(240, 0)
    ax.set_aspect("equal")
    ax.set_title(f"Keypoint demo, image {gt.image_ids[image]}: best OKS of each detection")
    ax.legend(loc="lower left", fontsize=7, frameon=True)
    _save(fig, out)


def fig_lvis_frequency_groups(out: Path) -> None:
    """Per-class AP of a generated federated set, coloured by LVIS frequency group, with the group means."""
    from objdet.training.metrics import LVISMeanAveragePrecision

    g = np.random.default_rng(3)
    n_classes = 36
    groups = ["r"] * 10 + ["c"] * 14 + ["f"] * 12
    frequencies = {c + 1: groups[c] for c in range(n_classes)}
    skill = {"r": 0.35, "c": 0.6, "f": 0.8}  # rarer classes are found less well
    preds, target = [], []
    for _ in range(120):
        present = g.choice(n_classes, size=3, replace=False) + 1
        if g.random() < 0.7:  # rare classes are seldom present
            present = present[[frequencies[int(c)] != "r" for c in present]] if len(present) else present
        boxes, labels, det_boxes, det_labels, scores = [], [], [], [], []
        for c in present.tolist():
            for _ in range(int(g.integers(1, 4))):
                x, y, w, h = g.uniform(0, 200), g.uniform(0, 200), g.uniform(10, 80), g.uniform(10, 80)
                boxes.append([x, y, w, h])
                labels.append(c)
                if g.random() < skill[frequencies[c]]:
                    det_boxes.append([x + g.normal(0, 0.08 * w), y + g.normal(0, 0.08 * h), w, h])
                    det_labels.append(c)
                    scores.append(g.uniform(0.4, 1.0))
        for _ in range(3):  # false alarms on the image's negative categories
            det_boxes.append([g.uniform(0, 200), g.uniform(0, 200), 30.0, 30.0])
            det_labels.append(int(g.integers(1, n_classes + 1)))
            scores.append(g.uniform(0.0, 0.6))
        negative = [c for c in range(1, n_classes + 1) if c not in present and g.random() < 0.3]
        preds.append(
            {"boxes": torch.tensor(det_boxes).reshape(-1, 4), "scores": torch.tensor(scores),
             "labels": torch.tensor(det_labels)}
        )  # fmt: skip
        target.append(
            {"boxes": torch.tensor(boxes).reshape(-1, 4), "labels": torch.tensor(labels),
             "neg_category_ids": torch.tensor(negative, dtype=torch.long),
             "not_exhaustive_category_ids": torch.tensor([], dtype=torch.long)}
        )  # fmt: skip
    metric = LVISMeanAveragePrecision(box_format="xywh", frequencies=frequencies, class_metrics=True)
    metric.update(preds, target)
    result = metric.compute()
    classes, ap = result["classes"].tolist(), result["map_per_class"].tolist()
    rows = sorted(((a, c) for a, c in zip(ap, classes, strict=True) if a >= 0), reverse=True)
    colors = {"r": "#d95f02", "c": "#7570b3", "f": "#1b9e77"}
    names = {"r": "rare", "c": "common", "f": "frequent"}
    fig = Figure(figsize=(7.2, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.bar(range(len(rows)), [a for a, _ in rows], color=[colors[frequencies[c]] for _, c in rows])
    for key, group in (("map_rare", "r"), ("map_common", "c"), ("map_frequent", "f")):
        value = float(result[key])
        ax.axhline(value, color=colors[group], ls="--", lw=1.2, label=f"{names[group]}: AP {value:.3f}")
    ax.set_xticks([])
    ax.set_xlabel("categories with ground truth, by AP")
    ax.set_ylabel("AP (0.50:0.95)")
    ax.set_ylim(0, 1)
    ax.set_title(f"LVIS AP per category and per frequency group (overall AP {float(result['map']):.3f})")
    ax.legend(loc="upper right", fontsize=8)
    _save(fig, out)


def draw_all(folder: Path) -> list[Path]:
    """Draw every figure into ``folder``; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fn in figures().items():
        path = folder / f"{name}.png"
        fn(path)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in draw_all(Path(__file__).resolve().parent / "_generated"):
        print(p)
