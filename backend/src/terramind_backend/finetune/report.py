"""The training report: one self-contained HTML file (inline SVG, no scripts, no external files)."""
from __future__ import annotations

from html import escape
from typing import List, Optional

import numpy as np

W, H, PAD = 460, 220, 40


def _polyline(values: List[Optional[float]], lo: float, hi: float, n: int, color: str) -> str:
    pts = []
    for i, v in enumerate(values):
        if v is None:
            continue
        x = PAD + (W - 2 * PAD) * (i / max(n - 1, 1))
        y = H - PAD - (H - 2 * PAD) * ((v - lo) / (hi - lo) if hi > lo else 0.5)
        pts.append(f"{x:.1f},{y:.1f}")
    dots = "".join(f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="2.5" fill="{color}"/>' for p in pts)
    return f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(pts)}"/>{dots}'


def line_chart(title: str, epochs: List[int], series: dict, y_range=None) -> str:
    """SVG chart of named series over epochs: {label: (values, colour)}."""
    values = [v for vals, _ in series.values() for v in vals if v is not None]
    lo, hi = y_range or (min(values, default=0.0), max(values, default=1.0))
    if hi == lo:
        hi = lo + 1.0
    n = len(epochs)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img" aria-label="{escape(title)}">',
             f'<text x="{W / 2}" y="18" text-anchor="middle" font-weight="bold">{escape(title)}</text>',
             f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#444"/>',
             f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H - PAD}" stroke="#444"/>',
             f'<text x="{PAD - 4}" y="{PAD + 4}" text-anchor="end" font-size="10">{hi:.3g}</text>',
             f'<text x="{PAD - 4}" y="{H - PAD}" text-anchor="end" font-size="10">{lo:.3g}</text>']
    for i, e in enumerate(epochs):
        x = PAD + (W - 2 * PAD) * (i / max(n - 1, 1))
        parts.append(f'<text x="{x:.1f}" y="{H - PAD + 14}" text-anchor="middle" font-size="10">{e}</text>')
    parts.append(f'<text x="{W / 2}" y="{H - 6}" text-anchor="middle" font-size="11">epoch</text>')
    for k, (label, (vals, color)) in enumerate(series.items()):
        parts.append(_polyline(vals, lo, hi, n, color))
        parts.append(f'<text x="{W - PAD}" y="{PAD + 14 * k}" text-anchor="end" font-size="11" fill="{color}">'
                     f'{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def confusion_table(matrix: np.ndarray, names: List[str]) -> str:
    """Rows = reference, columns = predicted; cells shaded by their share of the row."""
    rows = matrix.sum(1, keepdims=True).clip(min=1)
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    body = []
    for i, name in enumerate(names):
        cells = []
        for j in range(len(names)):
            share = matrix[i, j] / rows[i, 0]
            tone = int(255 - 155 * share)
            cells.append(f'<td style="background:rgb({tone},{tone},255)">{int(matrix[i, j])}</td>')
        body.append(f"<tr><th>{escape(name)}</th>{''.join(cells)}</tr>")
    return (f'<table class="cm"><tr><th>reference \\ predicted</th>{head}</tr>{"".join(body)}</table>')


def render(metrics: dict, matrix: np.ndarray) -> str:
    epochs = metrics["epochs"]
    ep = [e["epoch"] for e in epochs]
    names = [c["name"] for c in metrics["classes"]]
    loss = line_chart("Loss", ep, {"train": ([e["train_loss"] for e in epochs], "#1F77B4"),
                                   "validation": ([e["val_loss"] for e in epochs], "#FF7F0E")})
    miou = line_chart("Validation mIoU and accuracy", ep,
                      {"mIoU": ([e["val_miou"] for e in epochs], "#2CA02C"),
                       "accuracy": ([e["val_accuracy"] for e in epochs], "#9467BD")}, (0.0, 1.0))

    def fmt(v):
        return "–" if v is None else f"{v:.3f}"
    per_class = "".join(
        f'<tr><td><span class="sw" style="background:{escape(c["color"])}"></span>{escape(c["name"])}</td>'
        f'<td>{escape(str(c.get("label")))}</td><td>{metrics["label_pixels"].get(c["name"], 0)}</td>'
        f'<td>{fmt(p["iou"])}</td><td>{fmt(p["precision"])}</td><td>{fmt(p["recall"])}</td></tr>'
        for c, p in zip(metrics["classes"], metrics["per_class"]))
    split = metrics["split"]
    best = metrics.get("best_epoch")
    summary = (f"{escape(metrics['model'])} + {escape(metrics['decoder'])}, {len(epochs)} epoch(s) on "
               f"{escape(metrics['device'])}, stopped: {escape(metrics['stopped'])}; best epoch {best} "
               f"(validation mIoU {max((e['val_miou'] for e in epochs), default=0):.3f}). "
               f"{split['train_chips']} training and {split['val_chips']} validation chips "
               f"({split['train_labelled_pixels']} / {split['val_labelled_pixels']} labelled pixels).")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>TerraMind training report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1000px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#f4f4f4}}
.sw{{display:inline-block;width:12px;height:12px;margin-right:6px;border:1px solid #888}}
svg{{margin:0.5em 1em 0.5em 0;border:1px solid #eee}}</style></head><body>
<h1>TerraMind training report</h1><p>{summary}</p>
<p>Checkpoint: <code>{escape(metrics.get('checkpoint', ''))}</code></p>
{loss}{miou}
<h2>Per class (validation, best epoch)</h2>
<table><tr><th>class</th><th>label</th><th>labelled pixels</th><th>IoU</th><th>precision</th><th>recall</th></tr>
{per_class}</table>
<h2>Confusion matrix (validation, best epoch; pixels)</h2>
{confusion_table(matrix, names)}
</body></html>
"""
