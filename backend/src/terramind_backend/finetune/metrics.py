"""Confusion-matrix metrics of a validation pass (numpy only; rows = reference, columns = predicted)."""
from __future__ import annotations

from typing import Dict, List

import numpy as np


def confusion(reference: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts over labelled pixels (reference >= 0)."""
    keep = reference >= 0
    idx = reference[keep].astype(np.int64) * num_classes + predicted[keep].astype(np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def scores(matrix: np.ndarray) -> Dict[str, object]:
    """mIoU over the classes present in reference or prediction, pixel accuracy, per-class IoU/precision/recall."""
    m = matrix.astype(np.float64)
    tp = np.diag(m)
    ref, pred = m.sum(1), m.sum(0)
    union = ref + pred - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        precision = np.where(pred > 0, tp / pred, np.nan)
        recall = np.where(ref > 0, tp / ref, np.nan)
    present = union > 0
    total = m.sum()
    return {"miou": float(np.mean(iou[present])) if present.any() else 0.0,
            "accuracy": float(tp.sum() / total) if total else 0.0,
            "iou": iou, "precision": precision, "recall": recall}


def per_class(matrix: np.ndarray, classes) -> List[dict]:
    s = scores(matrix)

    def num(v):
        return None if np.isnan(v) else round(float(v), 6)
    return [{"value": c.value, "name": c.name, "iou": num(s["iou"][i]), "precision": num(s["precision"][i]),
             "recall": num(s["recall"][i]), "pixels": int(matrix[i].sum())} for i, c in enumerate(classes)]
