"""A live training curve: loss (left axis) and validation mIoU (right axis, 0–1) per epoch, drawn with QPainter.

Fed with the ``metrics`` dict of each finished epoch (docs/finetune.md: ``epoch``, ``train_loss``, ``val_loss``,
``val_miou``, ``best``); no plotting library in QGIS's process.
"""
from __future__ import annotations

import math

from qgis.PyQt.QtCore import QPointF, QRectF, QSize, Qt
from qgis.PyQt.QtGui import QColor, QFont, QPainter, QPainterPath, QPen
from qgis.PyQt.QtWidgets import QSizePolicy, QWidget

ALIGN_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
ALIGN_LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter

# (metrics key, legend text, colour, axis): loss values share the left axis, mIoU has the right one.
SERIES = (("train_loss", "training loss", "#1d6f8f", "loss"), ("val_loss", "validation loss", "#e08a00", "loss"),
          ("val_miou", "validation mIoU", "#2e7d32", "score"))
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 44, 40, 26, 26


def _number(value):
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


class TrainingCurve(QWidget):
    """Per-epoch curves of a training run; ``add_epoch`` repaints, ``clear`` starts over."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("training_curve")
        self.epochs: list[dict] = []
        self.total_epochs = 0
        self.setMinimumHeight(150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setToolTip("Loss (left axis) and validation mIoU (right axis) after each epoch; the dot marks the "
                        "best epoch, the one kept in the checkpoint")

    def sizeHint(self):  # noqa: N802 (Qt's name)
        return QSize(420, 180)

    def clear(self, total_epochs: int = 0) -> None:
        self.epochs = []
        self.total_epochs = total_epochs
        self.update()

    def add_epoch(self, metrics: dict) -> None:
        self.epochs = [e for e in self.epochs if e.get("epoch") != metrics.get("epoch")] + [dict(metrics)]
        self.epochs.sort(key=lambda e: e.get("epoch") or 0)
        self.update()

    def values(self, key: str) -> list[tuple[int, float]]:
        """(epoch, value) pairs of one series, skipping epochs without it."""
        return [(int(e["epoch"]), v) for e in self.epochs if e.get("epoch") is not None
                for v in [_number(e.get(key))] if v is not None]

    def best_epoch(self):
        best = [e for e in self.epochs if e.get("best")]
        return best[-1] if best else None

    # -- painting ----------------------------------------------------------------------------------
    def paintEvent(self, _event):  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor("#ffffff"))
        plot = QRectF(MARGIN_LEFT, MARGIN_TOP, max(10, self.width() - MARGIN_LEFT - MARGIN_RIGHT),
                      max(10, self.height() - MARGIN_TOP - MARGIN_BOTTOM))
        small = QFont(self.font())
        small.setPointSizeF(max(6.0, small.pointSizeF() * 0.85))
        painter.setFont(small)
        painter.setPen(QPen(QColor("#c9d1d9"), 1))
        painter.drawRect(plot)
        if not self.epochs:
            painter.setPen(QColor("#5f6b7a"))
            painter.drawText(plot, Qt.AlignmentFlag.AlignCenter, "The curve appears after the first epoch")
            painter.end()
            return
        last = max(self.total_epochs, max(int(e.get("epoch") or 0) for e in self.epochs), 2)
        losses = [v for key in ("train_loss", "val_loss") for _, v in self.values(key)]
        top = max(losses) * 1.1 if losses and max(losses) > 0 else 1.0

        def x(epoch):
            return plot.left() + plot.width() * (epoch - 1) / (last - 1)

        def y(value, axis):
            high = top if axis == "loss" else 1.0
            return plot.bottom() - plot.height() * max(0.0, min(1.0, value / high))

        self._axes(painter, plot, top, last, x)
        for key, _, colour, axis in SERIES:
            points = [QPointF(x(epoch), y(value, axis)) for epoch, value in self.values(key)]
            if not points:
                continue
            path = QPainterPath(points[0])
            for point in points[1:]:
                path.lineTo(point)
            painter.setPen(QPen(QColor(colour), 2))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPath(path)
            painter.setBrush(QColor(colour))
            for point in points:
                painter.drawEllipse(point, 2.0, 2.0)
        best = self.best_epoch()
        if best is not None and _number(best.get("val_miou")) is not None:
            painter.setPen(QPen(QColor("#1b5e20"), 2))
            painter.setBrush(QColor("#ffffff"))
            painter.drawEllipse(QPointF(x(int(best["epoch"])), y(float(best["val_miou"]), "score")), 5.0, 5.0)
        self._legend(painter, plot)
        painter.end()

    def _axes(self, painter, plot, top, last, x):
        painter.setPen(QColor("#5f6b7a"))
        for fraction in (0.0, 0.5, 1.0):
            level = plot.bottom() - plot.height() * fraction
            painter.drawText(QRectF(0, level - 8, MARGIN_LEFT - 4, 16), ALIGN_RIGHT,
                             f"{top * fraction:.2g}")
            painter.drawText(QRectF(plot.right() + 4, level - 8, MARGIN_RIGHT - 4, 16),
                             ALIGN_LEFT, f"{fraction:.1f}")
        step = max(1, math.ceil(last / 8))
        for epoch in range(1, last + 1, step):
            painter.drawText(QRectF(x(epoch) - 15, plot.bottom() + 2, 30, 16), Qt.AlignmentFlag.AlignCenter, str(epoch))
        painter.drawText(QRectF(plot.left(), plot.bottom() + 10, plot.width(), 16), Qt.AlignmentFlag.AlignRight,
                         "epoch")

    def _legend(self, painter, plot):
        left = plot.left()
        for _, text, colour, _ in SERIES:
            painter.setPen(QPen(QColor(colour), 3))
            painter.drawLine(QPointF(left, 12), QPointF(left + 14, 12))
            painter.setPen(QColor("#333333"))
            width = painter.fontMetrics().horizontalAdvance(text)
            painter.drawText(QRectF(left + 18, 4, width + 4, 16), ALIGN_LEFT, text)
            left += width + 34
