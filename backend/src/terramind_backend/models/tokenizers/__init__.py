"""The six TerraMind 1.0 tokenizers, state-dict compatible with TerraTorch 1.1.1 (their numbers: ``catalog.TOKENIZERS``).

``build_tokenizer("dem", pretrained=True)`` (or the registry name ``terramind_v1_tokenizer_dem``) returns an
eval-mode ``DiVAE``/``VQVAE``; see ``tokenizer.py`` for ``encode``/``tokenize``/``decode_tokens``/``forward``.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch

from ...catalog import COORDS_TOKENIZER, TOKENIZERS, Tokenizer, find_tokenizer
from .ddim import DDIMSampler
from .fsq import FiniteScalarQuantizer
from ..precision import check_precision
from .tokenizer import DiVAE, ImageTokenizer, VQVAE
from .unet import PatchedUNet
from .vit import ViTDecoder, ViTEncoder

__all__ = ["TOKENIZERS", "FAMILIES", "build_tokenizer", "DiVAE", "VQVAE", "ImageTokenizer",
           "FiniteScalarQuantizer", "DDIMSampler", "PatchedUNet", "ViTEncoder", "ViTDecoder"]


# The architecture family of a catalog row (TerraTorch's model_type) -> our module.
FAMILIES = {"divae": DiVAE, "vqvae": VQVAE}


def _float_state(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


def build_tokenizer(name: str, pretrained: bool = False, ckpt_path: Optional[str] = None,
                    download_progress=None, **kwargs) -> ImageTokenizer:
    """Build a TerraMind 1.0 tokenizer (eval mode, CPU, float32).

    Args:
        name: ``s2l2a``/``s1rtc``/``s1grd``/``dem``/``lulc``/``ndvi`` or ``terramind_v1_tokenizer_<key>``.
        pretrained: load the official weights through the Hugging Face cache (``hub.official_state_dict``).
        ckpt_path: load this local checkpoint instead (same key layout); takes precedence over ``pretrained``.
        download_progress: ``callable(done_bytes, total_bytes | None, label)`` for the download.
        kwargs: ``precision`` (decoder arithmetic: ``fp32`` default, ``bf16``, ``auto``; see docs/models.md), and
            TerraTorch registry arguments: ``image_size`` (default 256) sizes the stored position grid; the
            architecture arguments TerraTorch's registry passes are accepted when they match.
    Weights load strictly: a missing or unexpected key raises.
    ``"coords"`` (``terramind_v1_coords_tokenizer``) returns the Coordinates WordPiece tokenizer (``models.coords``).
    """
    if str(name).strip().lower() in ("coords", COORDS_TOKENIZER.registry_name):
        from ..coords import build_coords_tokenizer

        return build_coords_tokenizer(pretrained and ckpt_path is None, tokenizer_file=kwargs.pop("tokenizer_file", ckpt_path),
                                      download_progress=download_progress)
    spec = find_tokenizer(name)
    image_size = int(kwargs.pop("image_size", 256))
    precision = kwargs.pop("precision", "fp32")
    check_precision(precision)
    _check_fixed_kwargs(spec, kwargs)
    model = _build(spec, image_size, pretrained, ckpt_path, download_progress)
    model.precision = precision
    return model.eval()


def _build(spec: Tokenizer, image_size: int, pretrained: bool, ckpt_path, download_progress) -> ImageTokenizer:
    if ckpt_path is None and not pretrained:
        return FAMILIES[spec.family](spec.registry_name, spec.channels, spec.levels, image_size=image_size)

    from ... import hub

    if ckpt_path is not None:
        state = hub.load_checkpoint(ckpt_path)
    else:
        state = hub.official_state_dict(spec.registry_name, progress=download_progress)
    # Build without allocating or initialising weights, then adopt the checkpoint's tensors (saves ~1 GB and
    # the random init). FSQ buffers are not in the state dict, so the quantizer is built for real.
    with torch.device("meta"):
        model = FAMILIES[spec.family](spec.registry_name, spec.channels, spec.levels, image_size=image_size)
    model.quantize = FiniteScalarQuantizer(spec.levels)
    try:
        model.load_state_dict(_float_state(state), strict=True, assign=True)
    except RuntimeError as exc:
        raise RuntimeError(f"The checkpoint does not match the {spec.registry_name} architecture: {exc}") from None
    return model


# Architecture arguments TerraTorch's registry functions pass; anything else is a typo or unsupported.
_DIVAE_ONLY = {"decoder_type": "unet_patched", "dec_type": "unet_patched", "patch_size_dec": 4,
               "prediction_type": "sample", "clip_sample": True}


def _check_fixed_kwargs(spec: Tokenizer, kwargs: dict) -> None:
    fixed = {"n_channels": spec.channels, "codebook_size": spec.levels, "latent_dim": 5, "patch_size": 16,
             "post_mlp": True, "quant_type": "fsq", "encoder_type": "vit_b_enc", "enc_type": "vit_b_enc",
             "variant": spec.registry_name, "model_type": spec.family}
    if spec.family == "divae":
        fixed.update(_DIVAE_ONLY)
    else:
        fixed.update(decoder_type="vit_b_dec", dec_type="vit_b_dec", prediction_type="sample")
    for key, value in kwargs.items():
        if key not in fixed:
            raise TypeError(f"build_tokenizer({spec.key!r}) got an unexpected keyword argument {key!r}")
        if value != fixed[key]:
            raise ValueError(f"{spec.registry_name}: {key}={value!r} is not supported (fixed to {fixed[key]!r})")
