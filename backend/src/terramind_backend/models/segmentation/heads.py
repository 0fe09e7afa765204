"""The pixel-wise classification head of TerraTorch fine-tuning models (keys ``head.head.{0,1,2}``)."""
from __future__ import annotations

from typing import Optional, Sequence

from torch import nn


class SegmentationHead(nn.Module):
    """Optional 3×3 conv-ReLU blocks (``channel_list``), dropout, then a 1×1 conv to ``num_classes``."""

    def __init__(self, in_channels: int, num_classes: int, channel_list: Optional[Sequence[int]] = None,
                 dropout: float = 0.0):
        super().__init__()
        self.num_classes = int(num_classes)
        if channel_list:
            widths = [in_channels, *channel_list]
            pre = nn.Sequential(*(nn.Sequential(nn.Conv2d(a, b, kernel_size=3, padding=1), nn.ReLU())
                                  for a, b in zip(widths[:-1], widths[1:])))
            in_channels = widths[-1]
        else:
            pre = nn.Identity()
        self.head = nn.Sequential(pre, nn.Dropout(dropout) if dropout else nn.Identity(),
                                  nn.Conv2d(in_channels, self.num_classes, kernel_size=1))

    def forward(self, x):
        return self.head(x)
