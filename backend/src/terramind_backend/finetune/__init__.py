"""Fine-tuning (#14): train a TerraMind segmentation model on the user's labels, in plain torch.

``spec`` parses the ``finetune`` JobSpec (docs/finetune.md), ``labels`` reads raster/vector labels
onto a scene grid, ``scenes`` validates scenes and indexes chips, ``split`` makes the spatial-block
train/validation split, ``model`` builds the TerraTorch-shaped model, ``trainer`` runs the loop,
``checkpoint`` writes the Lightning file, ``report`` the HTML report and ``job`` ties them together.
Only ``job``, ``model``, ``trainer`` and ``checkpoint`` import torch.
"""
