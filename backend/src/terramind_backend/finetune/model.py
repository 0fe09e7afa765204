"""The segmentation model a finetune job trains, described as TerraTorch ``model_args``.

The description is the single source: the same ``model_args`` build the model here (our
``models.segmentation`` parts, with the official backbone weights), go into the checkpoint's
``hyper_parameters`` (TerraTorch's ``EncoderDecoderFactory`` rebuilds the identical model from them)
and decide the standardization statistics, through the same function ``segment`` uses to read them
back. Necks as TerraTorch's TerraMind examples: SelectIndices (per-size indices) →
ReshapeTokensToImage → LearnedInterpolateToPyramidal (UNet/UperNet) ; FCN takes the last block only.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

from ..catalog import BACKBONES
from .spec import FinetuneSpec

DECODER_CHANNELS = {"UNetDecoder": [512, 256, 128, 64], "UperNetDecoder": 256, "FCNDecoder": 256}
HEAD_DROPOUT = 0.1


def model_args(spec: FinetuneSpec, num_classes: int) -> dict:
    opts = spec.training_options
    backbone = f"{spec.model}_tim" if opts.tim else spec.model
    args = {"backbone": backbone, "backbone_pretrained": False,  # the checkpoint holds every tensor
            "backbone_modalities": list(spec.modalities), "backbone_merge_method": spec.merge_method}
    if opts.bands:
        args["backbone_bands"] = {m: list(b) for m, b in opts.bands.items()}
    if opts.tim:
        args["backbone_tim_modalities"] = list(spec.tim_modalities)
    if opts.modality_drop_rate:
        args["backbone_modality_drop_rate"] = opts.modality_drop_rate
    reshape = {"name": "ReshapeTokensToImage", "remove_cls_token": False}  # nosec B105: a TerraTorch option
    blocks = list(BACKBONES[spec.size].feature_blocks)  # four evenly spaced blocks, as TerraTorch's configs
    if opts.decoder == "FCNDecoder":
        args["necks"] = [{"name": "SelectIndices", "indices": blocks[-1:]}, reshape]
    else:
        args["necks"] = [{"name": "SelectIndices", "indices": blocks}, reshape,
                         {"name": "LearnedInterpolateToPyramidal"}]
    channels = opts.decoder_channels if opts.decoder_channels is not None else DECODER_CHANNELS[opts.decoder]
    args.update(decoder=opts.decoder, decoder_channels=list(channels) if isinstance(channels, tuple) else channels,
                head_dropout=HEAD_DROPOUT, num_classes=num_classes)
    return args


def input_stats(args: dict) -> Tuple[List[str], Dict[str, List[float]], Dict[str, List[float]]]:
    """(input names, means, stds) exactly as ``segment`` will read them back from the checkpoint."""
    from ..models.segmentation.checkpoint import _expected_inputs
    from ..models.segmentation.factory import parse_model_args

    inputs = _expected_inputs(parse_model_args(args), [])
    missing = [i.name for i in inputs if i.mean is None]
    if missing:
        raise ValueError(f"No standardization statistics for {', '.join(missing)}")
    return [i.name for i in inputs], {i.name: i.mean for i in inputs}, {i.name: i.std for i in inputs}


def build_model(args: dict, download_progress=None):
    """The model with the official pretrained backbone and freshly initialised necks/decoder/head.

    Seed torch before calling: the decoder and head initialisation draw from its RNG.
    """
    from ..models.layers import set_reference_arithmetic
    from ..models.registry import build_model as build_backbone
    from ..models.segmentation.factory import build_segmentation_model, parse_model_args

    config = parse_model_args(args)
    kwargs = dict(config.backbone_kwargs)
    backbone = build_backbone(config.backbone, pretrained=True, download_progress=download_progress, **kwargs)
    model = build_segmentation_model(config, backbone=backbone)
    set_reference_arithmetic(model.encoder, False)  # reference rounding only matters for inference parity
    return model
