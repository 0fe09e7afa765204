"""Fine-tuning from QGIS: labels from layers, the finetune JobSpec, the training task and applying the model.

The backend trains (JobSpec ``"task": "finetune"``, docs/finetune.md); this package only turns what a GIS user
has (a polygon or class-raster layer with its legend, input rasters) into that JobSpec, runs it in QGIS's task
manager and segments with the result. No torch here.
"""
