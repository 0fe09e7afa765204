"""Backend progress stages as the plugin shows them, for the task manager (task.py, finetune/task.py) and the
Processing feedback (processing/feedback.py) alike: what each stage is called and which share of one
progress bar it fills, so a job's bar moves the same way whichever door started it."""
from __future__ import annotations

from typing import Dict, Mapping, Tuple

STAGE_TEXT: Dict[str, str] = {
    "download": "Downloading weights", "load": "Loading model", "tiles": "Running tiles",
    "prepare": "Preparing labels and chips", "train": "Training",
}
# Share of the bar per stage of an inference job (start %, end %); the weights download comes first.
JOB_STAGES: Dict[str, Tuple[float, float]] = {"download": (0.0, 15.0), "load": (15.0, 25.0), "tiles": (25.0, 100.0)}
# A training job: training steps fill most of the bar.
TRAIN_STAGES: Dict[str, Tuple[float, float]] = {"download": (0.0, 4.0), "load": (4.0, 6.0), "prepare": (6.0, 10.0),
                                                "train": (10.0, 100.0)}


def stage_percent(event: Mapping, spans: Mapping[str, Tuple[float, float]], default: str) -> Tuple[str, float]:
    """(stage, percent of the whole bar) for a backend progress event; unknown stages count as ``default``."""
    stage = event.get("stage") or default
    start, end = spans.get(stage, spans[default])
    fraction = event.get("fraction")
    if fraction is None and event.get("total"):
        fraction = event.get("done", 0) / event["total"]
    return stage, start + (end - start) * max(0.0, min(1.0, float(fraction or 0.0)))


def stage_text(stage: str) -> str:
    return STAGE_TEXT.get(stage, str(stage))


def eta_text(seconds) -> str:
    """``~40 s left`` / ``~2 min left`` / ``~1.5 h left`` for a backend ``eta_s`` (empty when unknown)."""
    if not isinstance(seconds, (int, float)) or seconds < 0:
        return ""
    if seconds < 90:
        return f"~{max(1, round(seconds))} s left"
    if seconds < 90 * 60:
        return f"~{round(seconds / 60)} min left"
    return f"~{seconds / 3600:.1f} h left"


def progress_text(event: Mapping) -> str:
    """One line for a progress event: the backend's message (tiles and model step) and the ETA."""
    parts = [str(event.get("message") or stage_text(event.get("stage") or "")), eta_text(event.get("eta_s"))]
    return " \u00b7 ".join(p for p in parts if p)
