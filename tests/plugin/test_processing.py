"""The Processing provider without the backend: registration by the plugin, parameters and the JobSpecs
they become (what the backend would receive), and the checks that fail before any job is sent."""
from __future__ import annotations

import pytest
from tests.conftest import sample  # tests/conftest.py: the plugin suite's ini does not load it

ALGORITHMS = ("terramind:generate", "terramind:embed", "terramind:segment", "terramind:reconstruct",
              "terramind:finetune", "terramind:similarity")


def algorithm(alg_id):
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().createAlgorithmById(alg_id)
    assert alg is not None, alg_id
    return alg


def spec_for(alg_id, parameters):
    """The JobSpec an algorithm builds for these parameters (what processAlgorithm sends)."""
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProject

    alg = algorithm(alg_id)
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    ok, message = alg.checkParameterValues(parameters, context)
    assert ok, message
    return alg.build_spec(parameters, context, QgsProcessingFeedback()) + (context,)


def test_plugin_registers_and_removes_the_provider(qgis_iface, qgis_processing, monkeypatch):
    from qgis.core import QgsApplication

    import terramind_qgis

    monkeypatch.setattr(qgis_iface, "addPluginToRasterMenu", lambda *a: None, raising=False)
    monkeypatch.setattr(qgis_iface, "removePluginRasterMenu", lambda *a: None, raising=False)
    registry = QgsApplication.processingRegistry()
    existing = registry.providerById("terramind")
    if existing is not None:
        registry.removeProvider(existing)
    plugin = terramind_qgis.classFactory(qgis_iface)
    plugin.initProcessing()
    plugin.initGui()  # a second initProcessing (from initGui) must not add the provider twice
    provider = registry.providerById("terramind")
    assert provider is not None and provider.name() == "TerraMind"
    assert not provider.icon().isNull()
    assert sorted(a.id() for a in provider.algorithms()) == sorted(ALGORITHMS)
    plugin.unload()
    assert registry.providerById("terramind") is None


def test_algorithms_have_help_defaults_and_icons(provider):
    for alg_id in ALGORITHMS:
        alg = algorithm(alg_id)
        assert alg.displayName() and len(alg.shortHelpString()) > 100, alg_id
        if alg.parameterDefinition("MODEL") is not None:   # each size says what hardware it needs
            from terramind_qgis.vocabulary import MODEL_SIZES

            assert all(size.label in alg.shortHelpString() and size.hint in alg.shortHelpString()
                       for size in MODEL_SIZES), alg_id
        assert alg.helpUrl().startswith("https://"), alg_id
        assert not alg.icon().isNull()
        for definition in alg.parameterDefinitions():
            assert definition.description(), (alg_id, definition.name())
    generate = algorithm("terramind:generate")
    names = [d.name() for d in generate.parameterDefinitions()]
    for name in ("S2L2A", "S2L1C", "RGB", "S1GRD", "S1RTC", "DEM", "LULC", "NDVI", "OUTPUTS", "MODEL", "TIMESTEPS", "SEED",
                 "TILE_SIZE", "OVERLAP", "BATCH_SIZE", "EXTENT", "RESOLUTION", "CRS", "OUTPUT_LULC", "OUTPUT_NDVI"):
        assert name in names, name
    assert generate.parameterDefinition("TILE_SIZE").defaultValue() == 224
    assert generate.parameterDefinition("OVERLAP").defaultValue() == 32
    assert generate.parameterDefinition("RESOLUTION").defaultValue() == 10.0
    # every destination is also an output, so models and batch mode can chain and name them
    assert {o.name() for o in generate.outputDefinitions()} >= {"OUTPUT_LULC", "OUTPUT_NDVI", "OUTPUT_DEM"}


def test_generate_spec_defaults_to_lulc_in_a_temporary_file(provider):
    s2 = str(sample("S2L2A"))
    spec, destinations, context = spec_for("terramind:generate", {"S2L2A": s2, "MODEL": 0, "DEVICE": 2})
    assert spec["task"] == "generate" and spec["model"] == "terramind_v1_tiny" and spec["version"] == 1
    assert spec["inputs"] == {"S2L2A": {"path": s2, "bands": None, "scale": None, "offset": None, "nodata": None}}
    assert list(spec["outputs"]) == ["LULC"] and spec["outputs"]["LULC"].endswith(".tif")
    assert destinations == {"LULC": "OUTPUT_LULC"}
    # a temporary output is loaded into the project like any temporary Processing output
    assert spec["outputs"]["LULC"] in context.layersToLoadOnCompletion()
    assert spec["tiling"] == {"window": 224, "overlap": 32, "batch_size": 8}
    assert spec["device"] == "cpu" and spec["timesteps"] == 10 and spec["seed"] == 0
    assert spec["extent"] is None and spec["crs"] is None and spec["resolution"] == 10.0


def test_generate_spec_outputs_are_ticked_or_given_a_file(provider, tmp_path):
    ndvi, dem = str(tmp_path / "ndvi.tif"), str(tmp_path / "dem.tif")
    spec, destinations, _ = spec_for("terramind:generate", {
        "S2L2A": str(sample("S2L2A")), "S1RTC": str(sample("S1RTC")), "OUTPUTS": [3, 5],  # DEM, NDVI
        "OUTPUT_NDVI": ndvi, "OUTPUT_LULC": None, "TIMESTEPS": 3, "SEED": 7, "TILE_SIZE": 128, "OVERLAP": 16,
        "EXTENT": "500000,500500,7000000,7000600 [EPSG:32722]", "CRS": "EPSG:3857", "RESOLUTION": 20})
    assert list(spec["inputs"]) == ["S2L2A", "S1RTC"]
    assert spec["outputs"]["NDVI"] == ndvi and set(spec["outputs"]) == {"DEM", "NDVI"}
    assert destinations == {"DEM": "OUTPUT_DEM", "NDVI": "OUTPUT_NDVI"}
    assert spec["timesteps"] == 3 and spec["seed"] == 7
    assert spec["tiling"]["window"] == 128 and spec["tiling"]["overlap"] == 16
    assert spec["extent"] == {"bounds": [500000.0, 7000000.0, 500500.0, 7000600.0], "crs": "EPSG:32722"}
    assert spec["crs"] == "EPSG:3857" and spec["resolution"] == 20.0
    # a destination alone (not ticked) also asks for that output
    spec, _, _ = spec_for("terramind:generate", {"S2L2A": str(sample("S2L2A")), "OUTPUTS": [], "OUTPUT_DEM": dem})
    assert spec["outputs"] == {"DEM": dem}


def test_extent_without_crs_is_in_the_first_inputs_crs(provider):
    from qgis.core import QgsProject

    QgsProject.instance().setCrs(QgsProject.instance().crs().__class__())  # headless: no project CRS
    spec, _, _ = spec_for("terramind:generate", {"S2L2A": str(sample("S2L2A")), "EXTENT": "100,300,400,700"})
    assert spec["extent"] == {"bounds": [100.0, 400.0, 300.0, 700.0], "crs": "EPSG:32722"}


def test_band_mapping_from_parameter_and_from_band_layouts(provider):
    # a 13-band L1C file used as S2L2A drops B10, as in the dialog
    spec, _, _ = spec_for("terramind:generate", {"S2L2A": str(sample("S2L1C"))})
    assert spec["inputs"]["S2L2A"]["bands"] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13]
    spec, _, _ = spec_for("terramind:generate", {"S1RTC": str(sample("S1RTC")), "BANDS": "s1rtc = 2,1"})
    assert spec["inputs"]["S1RTC"]["bands"] == [2, 1]
    spec, _, _ = spec_for("terramind:generate", {"RGB": str(sample("S2L2A"))})
    assert spec["inputs"]["RGB"]["bands"] == [4, 3, 2]


def test_value_scaling_per_input(provider):
    spec, _, _ = spec_for("terramind:generate", {"S2L2A": str(sample("S2L2A")), "DEM": str(sample("DEM")),
                                                 "SCALE": "s2l2a=10000; DEM = 1,-100"})
    assert (spec["inputs"]["S2L2A"]["scale"], spec["inputs"]["S2L2A"]["offset"]) == (10000.0, None)
    assert (spec["inputs"]["DEM"]["scale"], spec["inputs"]["DEM"]["offset"]) == (1.0, -100.0)
    spec, _, _ = spec_for("terramind:reconstruct", {"INPUT": str(sample("DEM")), "MODALITY": 3, "SCALE": "0.5,2",
                                                    "OUTPUT": "/tmp/rec.tif"})
    assert (spec["inputs"]["DEM"]["scale"], spec["inputs"]["DEM"]["offset"]) == (0.5, 2.0)


@pytest.mark.parametrize("parameters, message", [
    ({}, "at least one input"),
    ({"S2L2A": "S2L2A", "OUTPUTS": []}, "at least one output"),
    ({"S2L2A": "S2L2A", "OUTPUTS": [0]}, "both an input and an output"),
    ({"S2L2A": "S2L2A", "BANDS": "S2L2A=1,2,3"}, "needs 12 bands"),
    ({"S2L2A": "S2L2A", "BANDS": "S2L2A=1,2,3,4,5,6,7,8,9,10,11,14"}, "does not exist"),
    ({"S2L2A": "S2L2A", "BANDS": "S1GRD=1,2"}, "no input layer"),
    ({"S2L2A": "S2L2A", "BANDS": "S2L2A"}, "MODALITY=1,2,3"),
    ({"S2L2A": "S2L2A", "BANDS": "S2L2A=1; S2L2A=2"}, "given twice"),
    ({"S2L2A": "S2L2A", "BANDS": "S2L2A=a,b"}, "not a list of band numbers"),
    ({"DEM": "S2L2A"}, "has 12 band.s. but DEM needs 1"),
    ({"S2L2A": "S2L2A", "OUTPUT_NDVI": "/tmp/ndvi.img"}, "GeoTIFF"),
    ({"S2L2A": "S2L2A", "SCALE": "S2L2A=0"}, "non-zero scale"),
    ({"S2L2A": "S2L2A", "SCALE": "S2L2A=x"}, "not SCALE"),
    ({"S2L2A": "S2L2A", "SCALE": "DEM=2"}, "Value scaling given for DEM"),
])
def test_generate_refuses_bad_parameters_with_a_clear_message(provider, parameters, message):
    from qgis.core import QgsProcessingContext, QgsProcessingException

    parameters = {k: (str(sample(v)) if k in ("S2L2A", "DEM") else v) for k, v in parameters.items()}
    alg = algorithm("terramind:generate")
    with pytest.raises(QgsProcessingException, match=message):
        alg.build_spec(parameters, QgsProcessingContext())


def test_tiling_rules_are_checked_before_running(provider):
    from qgis.core import QgsProcessingContext

    alg = algorithm("terramind:generate")
    ok, message = alg.checkParameterValues({"S2L2A": str(sample("S2L2A")), "TILE_SIZE": 100}, QgsProcessingContext())
    assert not ok and "multiple of the 16 px" in message
    ok, message = alg.checkParameterValues({"S2L2A": str(sample("S2L2A")), "TILE_SIZE": 64, "OVERLAP": 32},
                                           QgsProcessingContext())
    assert not ok and "at most 24" in message
    ok, message = algorithm("terramind:embed").checkParameterValues(
        {"S2L2A": str(sample("S2L2A")), "OVERLAP": 8, "OUTPUT": "x.tif"}, QgsProcessingContext())
    assert not ok and "per 16 px patch" in message


def test_embed_spec_backbone_and_tim(provider, tmp_path):
    out = str(tmp_path / "emb.tif")
    spec, destinations, _ = spec_for("terramind:embed", {
        "S2L2A": str(sample("S2L2A")), "LAYER": 3, "MERGE_METHOD": 2, "OUTPUT": out})
    assert spec["task"] == "embed" and spec["outputs"] == {"embeddings": out}
    assert spec["options"] == {"layer": 3, "merge_method": "concat", "precision": "auto", "standardize": True,
                               "use_location": False}
    assert destinations == {"embeddings": "OUTPUT"}
    spec, _, _ = spec_for("terramind:embed", {
        "S2L2A": str(sample("S2L2A")), "MODE": 1, "TIM_MODALITIES": [4, 5], "MODEL": 1, "OUTPUT": out})
    assert spec["task"] == "tim-embed" and spec["model"] == "terramind_v1_small"
    assert spec["options"] == {"layer": -1, "merge_method": "mean", "tim_modalities": ["LULC", "NDVI"],
                               "precision": "auto", "standardize": True, "use_location": False}


def test_segment_spec_takes_the_model_from_the_checkpoint(provider, tmp_path):
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"x")
    classes, probabilities = str(tmp_path / "classes.tif"), str(tmp_path / "p.tif")
    spec, destinations, _ = spec_for("terramind:segment", {
        "CHECKPOINT": str(checkpoint), "S2L2A": str(sample("S2L2A")), "OUTPUT": classes,
        "OUTPUT_PROBABILITIES": probabilities})
    assert spec["task"] == "segment" and "model" not in spec
    assert spec["outputs"] == {"classes": classes, "probabilities": probabilities}
    assert spec["options"] == {"checkpoint": str(checkpoint), "probabilities": True, "precision": "auto",
                               "standardize": True}
    assert destinations == {"classes": "OUTPUT", "probabilities": "OUTPUT_PROBABILITIES"}
    spec, destinations, _ = spec_for("terramind:segment", {
        "CHECKPOINT": str(checkpoint), "S2L2A": str(sample("S2L2A")), "OUTPUT": classes})
    assert spec["outputs"] == {"classes": classes} and spec["options"]["probabilities"] is False


def test_reconstruct_spec_round_trips_one_modality(provider, tmp_path):
    out = str(tmp_path / "rec.tif")
    spec, destinations, _ = spec_for("terramind:reconstruct", {
        "INPUT": str(sample("S1RTC")), "MODALITY": 2, "BANDS": "2,1", "OUTPUT": out, "TIMESTEPS": 2})
    assert spec["task"] == "reconstruct" and "model" not in spec
    assert spec["inputs"]["S1RTC"]["bands"] == [2, 1] and spec["outputs"] == {"S1RTC": out}
    assert spec["timesteps"] == 2 and destinations == {"S1RTC": "OUTPUT"}


def test_backend_events_drive_the_feedback():
    from qgis.core import QgsProcessingFeedback

    from terramind_qgis.processing.feedback import FeedbackReporter

    feedback = QgsProcessingFeedback()
    seen = []
    feedback.progressChanged.connect(seen.append)
    reporter = FeedbackReporter(feedback)
    reporter({"event": "progress", "stage": "load", "done": 1, "total": 1, "fraction": 1.0, "message": ""})
    reporter({"event": "progress", "stage": "tiles", "done": 1, "total": 4, "fraction": 0.25, "message": ""})
    reporter({"event": "progress", "stage": "tiles", "done": 3, "total": 4, "message": ""})
    reporter({"event": "log", "level": "warning", "message": "careful"})
    # one bar over the stages, as in the task manager (stages.JOB_STAGES): load ends at 25 %, tiles fill the rest
    assert seen == [25.0, 43.75, 81.25]
    assert "careful" in feedback.textLog()


def test_feedback_text_shows_tiles_step_and_eta():
    from qgis.core import QgsProcessingFeedback

    from terramind_qgis.processing.feedback import FeedbackReporter

    texts = []

    class Recording(QgsProcessingFeedback):
        def setProgressText(self, text):
            texts.append(text)

    feedback = Recording()
    reporter = FeedbackReporter(feedback)
    reporter({"event": "progress", "stage": "load", "done": 1, "total": 1, "fraction": 1.0, "message": ""})
    reporter({"event": "progress", "stage": "tiles", "done": 0, "total": 1, "fraction": 0.4, "eta_s": 30.2,
              "message": "tile 1 of 1 \u00b7 tokens step 2/5", "phase": "tokens", "step": 2, "steps": 5})
    assert texts == ["Loading model", "tile 1 of 1 \u00b7 tokens step 2/5 \u00b7 ~30 s left"]


def test_toolbox_and_batch_dialogs_build_widgets_for_every_parameter(provider, qgis_iface, monkeypatch):
    """The Processing GUI can show each algorithm (a parameter type without a widget would raise here)."""
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog
    from qgis.gui import QgsBrowserGuiModel

    browser = QgsBrowserGuiModel()
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: browser, raising=False)  # pytest-qgis's iface lacks it

    for alg_id in ALGORITHMS:
        for dialog_class in (AlgorithmDialog, BatchAlgorithmDialog):
            dialog = dialog_class(algorithm(alg_id))
            dialog.show()
            assert dialog.mainWidget() is not None
            dialog.close()
            dialog.deleteLater()
    batch = BatchAlgorithmDialog(algorithm("terramind:generate"))
    batch.mainWidget().addRow()  # a second row, as a user adds one per scene
    assert batch.mainWidget().batchRowCount() == 2
    batch.close()


def test_precision_parameter_reaches_the_jobspec(provider, tmp_path):
    """PRECISION (advanced) maps to options.precision; segment has no such parameter (checkpoints run in fp32)."""
    spec, _, _ = spec_for("terramind:generate", {"S2L2A": str(sample("S2L2A")), "PRECISION": 1})
    assert spec["options"]["precision"] == "fp32"
    spec, _, _ = spec_for("terramind:generate", {"S2L2A": str(sample("S2L2A"))})
    assert spec["options"]["precision"] == "auto"
    assert algorithm("terramind:segment").parameterDefinition("PRECISION") is None


def test_use_location_parameter_reaches_the_jobspec(provider, tmp_path):
    """USE_LOCATION (advanced) maps to options.use_location for generate and embed; other tasks have none."""
    spec, _, _ = spec_for("terramind:generate", {"S2L2A": str(sample("S2L2A")), "USE_LOCATION": True})
    assert spec["options"]["use_location"] is True
    spec, _, _ = spec_for("terramind:embed", {"S2L2A": str(sample("S2L2A")), "OUTPUT": str(tmp_path / "e.tif")})
    assert spec["options"]["use_location"] is False
    assert algorithm("terramind:segment").parameterDefinition("USE_LOCATION") is None
    assert algorithm("terramind:reconstruct").parameterDefinition("USE_LOCATION") is None


@pytest.mark.parametrize("setting", [True, False])
def test_post_processing_asks_for_a_hillshade_only_for_dem_outputs(provider, settings, tmp_path, setting):
    """What collect_results records (style, is a DEM) and the dem_hillshade setting decide, on the main thread,
    which loaded layers get a hillshade."""
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProject

    settings.dem_hillshade = setting
    alg = algorithm("terramind:generate")
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    outputs = []
    for name in ("DEM", "LULC"):
        path = str(tmp_path / f"{name.lower()}.tif")
        outputs.append({"name": name, "path": path, "style": path[:-4] + ".qml"})
        context.addLayerToLoadOnCompletion(path, QgsProcessingContext.LayerDetails(name, QgsProject.instance(),
                                                                                   f"OUTPUT_{name}"))
    destinations = {"DEM": "OUTPUT_DEM", "LULC": "OUTPUT_LULC"}
    alg.collect_results({"outputs": outputs}, destinations, context, QgsProcessingFeedback())
    alg.postProcessAlgorithm(context, QgsProcessingFeedback())
    processors = {o["name"]: context.layerToLoadOnCompletionDetails(o["path"]).postProcessor() for o in outputs}
    assert processors["DEM"].qml == outputs[0]["style"] and processors["DEM"].hillshade is setting
    assert processors["LULC"].qml == outputs[1]["style"] and processors["LULC"].hillshade is False
