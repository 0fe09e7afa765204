"""Backend events → QgsProcessingFeedback: the progress bar and its text follow the shared stage table
(``stages.py``, the same as the task manager's bar), log events go to the algorithm's log."""
from __future__ import annotations

from ..stages import JOB_STAGES, progress_text, stage_percent, stage_text


class FeedbackReporter:
    """Called with every backend event of one job."""

    SPANS = JOB_STAGES
    DEFAULT_STAGE = "tiles"

    def __init__(self, feedback):
        self.feedback = feedback
        self.stage = None

    def __call__(self, event: dict):
        kind = event.get("event")
        if kind == "progress":
            self.progress(event)
        elif kind == "log":
            level, message = event.get("level", "info"), event.get("message", "")
            if level == "warning":
                self.feedback.pushWarning(message) if hasattr(self.feedback, "pushWarning") else \
                    self.feedback.reportError(message, False)
            elif level == "debug":
                self.feedback.pushDebugInfo(message)
            else:
                self.feedback.pushInfo(message)

    def progress(self, event: dict):
        stage, percent = stage_percent(event, self.SPANS, self.DEFAULT_STAGE)
        if stage == "tiles" and event.get("message"):
            self.stage = stage
            self.feedback.setProgressText(progress_text(event))   # tiles, model step and ETA, as the task manager
        elif stage != self.stage:
            self.stage = stage
            self.feedback.setProgressText(stage_text(stage))
        self.feedback.setProgress(percent)
