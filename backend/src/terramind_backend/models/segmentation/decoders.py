"""Dense decoders of TerraTorch 1.1.1 fine-tuning models, rebuilt without TerraTorch or smp.

Module paths reproduce the state-dict keys of ``terratorch/models/decoders/`` (UNet wraps smp 0.5.0's
``UnetDecoder``, hence ``decoder.decoder.blocks.*``). Each decoder takes the channel list coming out
of the necks and exposes ``out_channels`` (an int) for the head.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn


# --- building blocks -------------------------------------------------------------------------------

class ConvNormReLU(nn.Module):
    """Conv (no bias) → BatchNorm → ReLU; keys ``conv.*``, ``norm.*`` (UperNet's ConvModule)."""

    def __init__(self, cin: int, cout: int, kernel_size: int, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, padding=padding, bias=False)
        self.norm = nn.BatchNorm2d(cout)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


def _norm_layer(use_norm, channels: int) -> nn.Module:
    """smp's ``use_norm``: True/"batchnorm" → BatchNorm2d, False/"identity" → none."""
    kind = {True: "batchnorm", False: "identity"}.get(use_norm, use_norm)
    if isinstance(kind, str) and kind.lower() == "batchnorm":
        return nn.BatchNorm2d(channels)
    if isinstance(kind, str) and kind.lower() == "identity":
        return nn.Identity()
    raise ValueError(f"UNetDecoder use_batchnorm={use_norm!r} is not supported (use true, false, "
                     "'batchnorm' or 'identity')")


def _conv_relu(cin: int, cout: int, use_norm) -> nn.Sequential:
    """smp ``Conv2dReLU``: keys ``0`` (conv), ``1`` (norm), ``2`` (ReLU). The conv has a bias only without norm."""
    norm = _norm_layer(use_norm, cout)
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=isinstance(norm, nn.Identity)), norm, nn.ReLU())


class SCSE(nn.Module):
    """Concurrent spatial and channel squeeze-and-excitation (smp ``attention_type="scse"``)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.cSE = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, channels // reduction, 1), nn.ReLU(),
                                 nn.Conv2d(channels // reduction, channels, 1), nn.Sigmoid())
        self.sSE = nn.Sequential(nn.Conv2d(channels, 1, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.cSE(x) + x * self.sSE(x)


class _Attention(nn.Module):
    """Holds the attention module under ``attention`` (smp key layout); identity when none."""

    def __init__(self, kind: Optional[str], channels: int):
        super().__init__()
        if kind is None:
            self.attention = nn.Identity()
        elif kind == "scse":
            self.attention = SCSE(channels)
        else:
            raise ValueError(f"UNetDecoder attention_type={kind!r} is not supported (use null or 'scse')")

    def forward(self, x):
        return self.attention(x)


# --- UNet ------------------------------------------------------------------------------------------

class UNetBlock(nn.Module):
    """Resize (nearest) to the skip's size, concatenate the skip, two 3×3 conv-norm-ReLU."""

    def __init__(self, cin: int, skip: int, cout: int, use_norm, attention_type):
        super().__init__()
        self.conv1 = _conv_relu(cin + skip, cout, use_norm)
        self.attention1 = _Attention(attention_type, cin + skip)
        self.conv2 = _conv_relu(cout, cout, use_norm)
        self.attention2 = _Attention(attention_type, cout)

    def forward(self, x, size, skip=None):
        x = F.interpolate(x, size=size, mode="nearest")
        if skip is not None:
            x = self.attention1(torch.cat([x, skip], dim=1))
        return self.attention2(self.conv2(self.conv1(x)))


class _UNetBlocks(nn.Module):
    """The smp decoder body: blocks run from the deepest map to the shallowest."""

    def __init__(self, embed_dim: Sequence[int], channels: Sequence[int], use_norm, attention_type):
        super().__init__()
        deep_first = list(embed_dim)[::-1]
        ins = [deep_first[0], *channels[:-1]]
        skips = [*deep_first[1:], 0]
        self.blocks = nn.ModuleList(UNetBlock(i, s, o, use_norm, attention_type)
                                    for i, s, o in zip(ins, skips, channels))

    def forward(self, features: List[torch.Tensor]) -> torch.Tensor:
        # smp is given [f0, f0, f1, ...] and drops the first; the last block resizes to f0's size, no skip.
        deep_first = features[::-1]
        sizes = [f.shape[-2:] for f in deep_first[1:]] + [features[0].shape[-2:]]
        x = deep_first[0]
        for i, block in enumerate(self.blocks):
            skip = deep_first[i + 1] if i + 1 < len(deep_first) else None
            x = block(x, sizes[i], skip)
        return x


class UNetDecoder(nn.Module):
    """TerraTorch ``UNetDecoder(embed_dim, channels, use_batchnorm, attention_type)``."""

    def __init__(self, embed_dim: Sequence[int], channels: Sequence[int], use_batchnorm="batchnorm",
                 attention_type: Optional[str] = None):
        super().__init__()
        if len(embed_dim) != len(channels):
            raise ValueError(f"UNetDecoder needs one decoder channel per feature map: {len(embed_dim)} maps, "
                             f"channels={list(channels)}")
        self.decoder = _UNetBlocks(embed_dim, list(channels), use_batchnorm, attention_type)
        self.out_channels = int(channels[-1])

    def forward(self, features):
        return self.decoder(list(features))


# --- UperNet ---------------------------------------------------------------------------------------

class PoolingPyramid(nn.ModuleList):
    """PSP pooling branches: adaptive average pool → 1×1 ConvNormReLU → bilinear back to input size."""

    def __init__(self, pool_scales, cin: int, channels: int, align_corners: bool):
        super().__init__(nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvNormReLU(cin, channels, 1)) for s in pool_scales)
        self.align_corners = align_corners

    def forward(self, x):
        return [F.interpolate(branch(x), size=x.shape[2:], mode="bilinear", align_corners=self.align_corners)
                for branch in self]


class UperNetDecoder(nn.Module):
    """TerraTorch ``UperNetDecoder`` (from MMSegmentation): PPM on the last map + FPN top-down fusion."""

    def __init__(self, embed_dim: Sequence[int], pool_scales=(1, 2, 3, 6), channels: int = 256,
                 align_corners: bool = True, scale_modules: bool = False):
        super().__init__()
        dims = list(embed_dim)
        self.scale_modules = bool(scale_modules)
        if self.scale_modules:  # deprecated in TerraTorch; same layers as LearnedInterpolateToPyramidal
            c0, c1 = dims[0], dims[1]
            self.fpn1 = nn.Sequential(nn.ConvTranspose2d(c0, c0 // 2, 2, 2), nn.BatchNorm2d(c0 // 2), nn.GELU(),
                                      nn.ConvTranspose2d(c0 // 2, c0 // 4, 2, 2))
            self.fpn2 = nn.Sequential(nn.ConvTranspose2d(c1, c1 // 2, 2, 2))
            self.fpn3 = nn.Sequential(nn.Identity())
            self.fpn4 = nn.Sequential(nn.MaxPool2d(kernel_size=2, stride=2))
            dims = [c0 // 4, c1 // 2, dims[2], dims[3]]
        self.align_corners = align_corners
        self.out_channels = self.channels = int(channels)
        self.psp_modules = PoolingPyramid(pool_scales, dims[-1], channels, align_corners)
        self.bottleneck = ConvNormReLU(dims[-1] + len(pool_scales) * channels, channels, 3, padding=1)
        self.lateral_convs = nn.ModuleList(ConvNormReLU(d, channels, 1) for d in dims[:-1])
        self.fpn_convs = nn.ModuleList(ConvNormReLU(channels, channels, 3, padding=1) for _ in dims[:-1])
        self.fpn_bottleneck = ConvNormReLU(len(dims) * channels, channels, 3, padding=1)

    def _resize(self, x, size):
        return F.interpolate(x, size=size, mode="bilinear", align_corners=self.align_corners)

    def forward(self, inputs):
        if self.scale_modules:
            inputs = [self.fpn1(inputs[0]), self.fpn2(inputs[1]), self.fpn3(inputs[2]), self.fpn4(inputs[3])]
        top = inputs[-1]
        laterals = [conv(inputs[i]) for i, conv in enumerate(self.lateral_convs)]
        laterals.append(self.bottleneck(torch.cat([top, *self.psp_modules(top)], dim=1)))
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + self._resize(laterals[i], laterals[i - 1].shape[2:])
        outs = [conv(laterals[i]) for i, conv in enumerate(self.fpn_convs)] + [laterals[-1]]
        size = outs[0].shape[2:]
        outs = [outs[0]] + [self._resize(o, size) for o in outs[1:]]
        return self.fpn_bottleneck(torch.cat(outs, dim=1))


# --- FCN and identity ------------------------------------------------------------------------------

class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a map; key ``ln.*``."""

    def __init__(self, channels: int):
        super().__init__()
        self.ln = nn.LayerNorm(channels, eps=1e-6)

    def forward(self, x):
        return self.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()


class FCNDecoder(nn.Module):
    """TerraTorch ``FCNDecoder``: ``num_convs`` × (ConvT ×2, 3×3 conv, channel LayerNorm, GELU) on one map."""

    def __init__(self, embed_dim: Sequence[int], channels: int = 256, num_convs: int = 4, in_index: int = -1):
        super().__init__()
        if num_convs < 1:
            raise ValueError("FCNDecoder num_convs must be >= 1")
        self.in_index = int(in_index)
        cin = list(embed_dim)[self.in_index]
        blocks = []
        for i in range(num_convs):
            c = cin if i == 0 else channels
            blocks.append(nn.Sequential(nn.ConvTranspose2d(c, channels, kernel_size=2, stride=2),
                                        nn.Conv2d(channels, channels, kernel_size=3, padding=1),
                                        ChannelLayerNorm(channels), nn.GELU()))
        self.convs = nn.Sequential(*blocks)
        self.out_channels = int(channels)

    def forward(self, features):
        return self.convs(features[self.in_index])


class IdentityDecoder(nn.Module):
    """Pass one feature map straight to the head."""

    def __init__(self, embed_dim: Sequence[int], out_index: int = -1):
        super().__init__()
        self.out_index = int(out_index)
        self.out_channels = int(list(embed_dim)[self.out_index])

    def forward(self, features):
        return features[self.out_index]


DECODERS = {cls.__name__: cls for cls in (UNetDecoder, UperNetDecoder, FCNDecoder, IdentityDecoder)}
