"""Necks: turn a backbone's list of layer outputs into what a dense decoder expects.

Behaviour and state-dict keys follow TerraTorch 1.1.1 (``terratorch/models/necks.py``), so the
``neck.<i>.*`` tensors of a fine-tuning checkpoint load as they are. Every neck takes the incoming
channel list at construction and reports the outgoing one in ``out_channels``.
"""
from __future__ import annotations

import math
import warnings
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Neck(nn.Module):
    """A neck maps ``list[Tensor]`` to ``list[Tensor]``; ``out_channels`` is its output channel list."""

    def __init__(self, channel_list: Sequence[int]):
        super().__init__()
        self.in_channels = list(channel_list)
        self.out_channels = list(channel_list)

    def forward(self, features: List[torch.Tensor], image_size=None) -> List[torch.Tensor]:
        raise NotImplementedError


class SelectIndices(Neck):
    """Keep the listed layer outputs, e.g. ``[2, 5, 8, 11]`` of a 12-layer TerraMind."""

    def __init__(self, channel_list, indices: Sequence[int]):
        super().__init__(channel_list)
        self.indices = [int(i) for i in indices]
        try:
            self.out_channels = [self.in_channels[i] for i in self.indices]
        except IndexError:
            raise ValueError(f"SelectIndices indices {self.indices} are out of range for a backbone with "
                             f"{len(self.in_channels)} outputs") from None

    def forward(self, features, image_size=None):
        return [features[i] for i in self.indices]


class PermuteDims(Neck):
    def __init__(self, channel_list, new_order: Sequence[int]):
        super().__init__(channel_list)
        self.new_order = [int(i) for i in new_order]

    def forward(self, features, image_size=None):
        return [f.permute(*self.new_order).contiguous() for f in features]


class ReshapeTokensToImage(Neck):
    """``[B, N, E]`` tokens → ``[B, E*t, h, w]`` maps.

    The grid height comes from ``h``, else from a square token count, else from the image size.
    TerraTorch's default ``remove_cls_token=True`` is kept for compatibility: TerraMind has no CLS
    token, and (as in TerraTorch) a token count that only fits the image without dropping a token
    falls back to keeping every token. Unlike TerraTorch 1.1.1, non-square grids work (its code
    path there raises NameError).
    """

    def __init__(self, channel_list, remove_cls_token: bool = True, effective_time_dim: int = 1,
                 h: Optional[int] = None):
        super().__init__(channel_list)
        self.remove_cls_token = bool(remove_cls_token)
        self.effective_time_dim = int(effective_time_dim)
        self.h = h

    def _grid(self, tokens: int, image_size) -> Optional[tuple]:
        per_step = tokens // self.effective_time_dim
        if self.h:
            return int(self.h), per_step // int(self.h)
        side = math.sqrt(per_step)
        if side == int(side):
            return int(side), int(side)
        if image_size is None:
            raise ValueError("ReshapeTokensToImage needs the image size for a non-square token grid")
        patch = (float(image_size[0]) * float(image_size[1]) / per_step) ** 0.5
        if patch % 1:
            return None
        h = int(image_size[0] // patch)
        return h, per_step // h

    def forward(self, features, image_size=None):
        out = []
        for x in features:
            drop_first = self.remove_cls_token
            tokens = x[:, 1:, :] if drop_first else x
            grid = self._grid(tokens.shape[1], image_size)
            if grid is None and drop_first:
                warnings.warn("ReshapeTokensToImage: no CLS token found, keeping all tokens "
                              "(set remove_cls_token: false for TerraMind)")
                tokens, grid = x, self._grid(x.shape[1], image_size)
            if grid is None:
                raise ValueError(f"ReshapeTokensToImage cannot arrange {x.shape[1]} tokens into a grid "
                                 f"for image size {tuple(image_size)}")
            h, w = grid
            b, e, t = x.shape[0], x.shape[-1], self.effective_time_dim
            out.append(tokens.reshape(b, t, h, w, e).permute(0, 1, 4, 2, 3).reshape(b, t * e, h, w))
        return out


class InterpolateToPyramidal(Neck):
    """Resize output i by ``scale_factor ** (n - i)`` so a plain ViT looks hierarchical."""

    def __init__(self, channel_list, scale_factor: int = 2, mode: str = "nearest"):
        super().__init__(channel_list)
        self.scale_factor = scale_factor
        self.mode = mode

    def forward(self, features, image_size=None):
        n = len(features)
        return [F.interpolate(x, scale_factor=self.scale_factor ** (n - i), mode=self.mode)
                for i, x in enumerate(features)]


class MaxpoolToPyramidal(Neck):
    """Max-pool output i by ``kernel_size ** i`` (output 0 unchanged)."""

    def __init__(self, channel_list, kernel_size: int = 2):
        super().__init__(channel_list)
        self.kernel_size = kernel_size

    def forward(self, features, image_size=None):
        return [x.clone() if i == 0 else F.max_pool2d(x, kernel_size=self.kernel_size ** i)
                for i, x in enumerate(features)]


class AddBottleneckLayer(Neck):
    """Append a 1×1 conv of the last map with half its channels."""

    def __init__(self, channel_list):
        super().__init__(channel_list)
        last = self.in_channels[-1]
        self.bottleneck = nn.Conv2d(last, last // 2, kernel_size=1)
        self.out_channels = [*self.in_channels, last // 2]

    def forward(self, features, image_size=None):
        return [*features, self.bottleneck(features[-1])]


class LearnedInterpolateToPyramidal(Neck):
    """Four ViT maps → a ×4, ×2, ×1, ×½ pyramid with learned transposed convolutions.

    Keys: ``fpn1.{0,1,3}`` (ConvT, BatchNorm, -, ConvT) and ``fpn2.0``; ``fpn3``/``fpn4`` hold none.
    """

    def __init__(self, channel_list):
        super().__init__(channel_list)
        if len(self.in_channels) != 4:
            raise ValueError("LearnedInterpolateToPyramidal needs exactly 4 feature maps "
                             f"(got {len(self.in_channels)}); put SelectIndices with 4 indices before it")
        c0, c1, c2, c3 = self.in_channels
        self.fpn1 = nn.Sequential(nn.ConvTranspose2d(c0, c0 // 2, 2, 2), nn.BatchNorm2d(c0 // 2), nn.GELU(),
                                  nn.ConvTranspose2d(c0 // 2, c0 // 4, 2, 2))
        self.fpn2 = nn.Sequential(nn.ConvTranspose2d(c1, c1 // 2, 2, 2))
        self.fpn3 = nn.Sequential(nn.Identity())
        self.fpn4 = nn.Sequential(nn.MaxPool2d(kernel_size=2, stride=2))
        self.out_channels = [c0 // 4, c1 // 2, c2, c3]

    def forward(self, features, image_size=None):
        return [self.fpn1(features[0]), self.fpn2(features[1]), self.fpn3(features[2]), self.fpn4(features[3])]


NECKS = {cls.__name__: cls for cls in (SelectIndices, PermuteDims, ReshapeTokensToImage, InterpolateToPyramidal,
                                       MaxpoolToPyramidal, AddBottleneckLayer, LearnedInterpolateToPyramidal)}


class NeckChain(nn.Sequential):
    """The necks in order; state keys ``<i>.*`` as TerraTorch's ``NeckSequential``."""

    def forward(self, features, image_size=None):
        for neck in self:
            features = neck(features, image_size=image_size)
        return features


def build_necks(specs: Sequence[dict], channel_list: Sequence[int], *, resolve_name) -> tuple:
    """``[{"name": ..., **kwargs}, ...]`` → (NeckChain, output channel list).

    ``resolve_name`` maps a configured name to a key of ``NECKS`` or raises (see factory).
    """
    necks, channels = [], list(channel_list)
    for spec in specs or []:
        spec = dict(spec)
        name = resolve_name(spec.pop("name", None))
        try:
            neck = NECKS[name](channels, **spec)
        except TypeError as exc:
            raise ValueError(f"Neck {name}: unsupported arguments {sorted(spec)} ({exc})") from None
        necks.append(neck)
        channels = neck.out_channels
    return NeckChain(*necks), channels
