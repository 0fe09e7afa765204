"""Fine-tuned segmentation: run TerraTorch ``SemanticSegmentationTask`` checkpoints without TerraTorch.

- ``load_segmentation_checkpoint(path, config=None)`` → model (eval) + ``CheckpointInfo``
- ``describe_checkpoint(path, config=None)`` → JSON-ready dict (classes, expected inputs, parts)
- ``build_segmentation_model(model_args)`` → the ``EncoderDecoderFactory`` model with random weights
"""
from .checkpoint import (CheckpointError, CheckpointInfo, ExpectedInput, LoadedSegmentation, describe_checkpoint,
                         load_segmentation_checkpoint, read_checkpoint)
from .classes import ClassTableError, SegmentationClass, build_class_table, sidecar_path, write_sidecar
from .factory import (SegmentationConfig, SegmentationModel, UnsupportedCheckpointError, build_segmentation_model,
                      parse_model_args)

__all__ = [
    "CheckpointError", "CheckpointInfo", "ClassTableError", "ExpectedInput", "LoadedSegmentation",
    "SegmentationClass", "SegmentationConfig", "SegmentationModel", "UnsupportedCheckpointError",
    "build_class_table", "build_segmentation_model", "describe_checkpoint", "load_segmentation_checkpoint",
    "parse_model_args", "read_checkpoint", "sidecar_path", "write_sidecar",
]
