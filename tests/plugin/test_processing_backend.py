"""The TerraMind algorithms end to end in headless QGIS 3.22 against the real backend process
(.venv-backend, tiny random-weight checkpoints from the fake hub, TerraMesh samples): processing.run,
batch mode as the batch dialog runs it, a graphical model, cancel through the feedback, backend errors,
and qgis_process (list and run)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from tests.conftest import BACKEND_PYTHON, FAKE_HUB, PLACES, REPO, coords_hub, fake_hub, sample  # noqa: F401 (fixtures)

# These tests share one warm backend (as the toolbox does); later modules expect none running.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("stop_backend_after_module")]
QGIS_PROCESS = Path("/usr/bin/qgis_process.bin")
LULC_CLASSES = 10
# tiny model, 2 decoding steps, CPU: the cheapest generation that still runs the whole pipeline
FAST = {"MODEL": 0, "TIMESTEPS": 2, "DEVICE": 2, "OUTPUTS": [4]}


class RecordingFeedback:
    """A QgsProcessingFeedback that remembers progress and can cancel itself at a chosen point."""

    @staticmethod
    def create(cancel_when=None):
        from qgis.core import QgsProcessingFeedback

        feedback = QgsProcessingFeedback()
        feedback.progress_seen = []

        def on_progress(value):
            feedback.progress_seen.append(value)
            if cancel_when is not None and cancel_when(value) and not feedback.isCanceled():
                feedback.cancel()

        feedback.progressChanged.connect(on_progress)
        return feedback


def read_raster(path):
    from qgis.core import QgsRasterLayer

    layer = QgsRasterLayer(str(path), "check", "gdal")
    assert layer.isValid(), path
    return layer


def class_values(layer):
    """Distinct values of band 1 (a 224×224 class raster, read through QGIS's block API)."""
    block = layer.dataProvider().block(1, layer.extent(), layer.width(), layer.height())
    return {int(block.value(r, c)) for r in range(0, layer.height(), 7) for c in range(0, layer.width(), 7)}


def test_generate_with_processing_run(backend_python, provider, tmp_path):
    import processing

    out = tmp_path / "lulc.tif"
    feedback = RecordingFeedback.create()
    results = processing.run("terramind:generate", {"S2L2A": str(sample("S2L2A")), **FAST,
                                                    "OUTPUT_LULC": str(out)}, feedback=feedback)
    assert Path(results["OUTPUT_LULC"]) == out and out.exists()
    layer = read_raster(out)
    source = read_raster(sample("S2L2A"))
    assert (layer.width(), layer.height()) == (source.width(), source.height())
    assert layer.crs().authid() == source.crs().authid() == "EPSG:32722"
    assert layer.extent().toString(0) == source.extent().toString(0)
    assert class_values(layer) <= set(range(LULC_CLASSES))
    assert out.with_suffix(".qml").exists(), "the engine writes a sidecar style"
    assert feedback.progress_seen and max(feedback.progress_seen) == pytest.approx(100.0)
    assert "TerraMind:" in feedback.textLog()  # the summary line (tiles, device, time)


def test_batch_of_two_inputs_loads_styled_layers(backend_python, provider, tmp_path):
    """Two rows run exactly as QGIS's batch dialog runs them: one algorithm instance, a fresh context
    per row, destinations bound to the project, then handleAlgorithmResults loads each row's layers."""
    from processing.gui.Postprocessing import handleAlgorithmResults
    from processing.tools import dataobjects
    from qgis.core import (QgsApplication, QgsPalettedRasterRenderer, QgsProcessingOutputLayerDefinition,
                           QgsProject)

    project = QgsProject.instance()
    project.removeAllMapLayers()
    alg = QgsApplication.processingRegistry().createAlgorithmById("terramind:generate")
    feedback = RecordingFeedback.create()
    outputs = []
    for place in PLACES[:2]:
        out = tmp_path / f"lulc_{place}.tif"
        outputs.append(out)
        parameters = {"S2L2A": str(sample("S2L2A", place)), **FAST,
                      "OUTPUT_LULC": QgsProcessingOutputLayerDefinition(str(out), project)}
        parameters = alg.preprocessParameters(parameters)
        context = dataobjects.createContext(feedback)
        results, ok = alg.run(parameters, context, feedback)
        assert ok, feedback.textLog()
        assert Path(results["OUTPUT_LULC"]) == out
        assert_style_post_processor(context, out, feedback)
        assert handleAlgorithmResults(alg, context, feedback, False, parameters)
    layers = {Path(l.source()): l for l in project.mapLayers().values()}
    assert set(layers) == set(outputs)
    for out in outputs:
        renderer = layers[out].renderer()
        assert isinstance(renderer, QgsPalettedRasterRenderer), type(renderer)  # the sidecar .qml
        assert len(renderer.classes()) == LULC_CLASSES
    assert read_raster(outputs[0]).crs().authid() != read_raster(outputs[1]).crs().authid()  # two places
    project.removeAllMapLayers()


def assert_style_post_processor(context, out, feedback):
    """The output's LayerDetails carry our post-processor, and it applies the engine's .qml to a layer
    loaded without any style (QGIS alone would also pick up <name>.qml; other loaders may not)."""
    from qgis.core import QgsPalettedRasterRenderer, QgsRasterLayer, QgsSingleBandGrayRenderer

    processor = context.layerToLoadOnCompletionDetails(str(out)).postProcessor()
    assert processor is not None
    options = QgsRasterLayer.LayerOptions()
    options.loadDefaultStyle = False
    bare = QgsRasterLayer(str(out), "bare", "gdal", options)
    bare.setRenderer(QgsSingleBandGrayRenderer(bare.dataProvider(), 1))
    processor.postProcessLayer(bare, context, feedback)
    assert isinstance(bare.renderer(), QgsPalettedRasterRenderer)


def run_as_toolbox(alg, parameters, feedback, qtbot) -> dict:
    """As the algorithm dialog runs it: a QgsProcessingAlgRunnerTask (prepare on the main thread, the job
    in a task-manager worker thread, postProcess back on the main thread), then handleAlgorithmResults.
    Returns ok, the results, the context and the type hints of the layers it was told to load."""
    from processing.gui.Postprocessing import handleAlgorithmResults
    from processing.tools import dataobjects
    from qgis.core import QgsApplication, QgsProcessingAlgRunnerTask

    context = dataobjects.createContext(feedback)
    done = {"context": context}   # kept alive with the results, as the dialog keeps it

    def on_complete(ok, results):
        done.update(ok=ok, results=results)
        if ok:
            done["hints"] = [context.layerToLoadOnCompletionDetails(key).layerTypeHint
                             for key in context.layersToLoadOnCompletion()]
            handleAlgorithmResults(alg, context, feedback, True, parameters)

    task = QgsProcessingAlgRunnerTask(alg, parameters, context, feedback)
    task.executed.connect(on_complete)
    with qtbot.waitSignal(task.executed, timeout=240_000):
        QgsApplication.taskManager().addTask(task)
    return done


def test_toolbox_run_loads_a_temporary_output_with_its_style(backend_python, provider, qtbot):
    """Run as the algorithm dialog runs it, no destination given (the dialog's default): LULC goes to a
    temporary file that is loaded styled."""
    from qgis.core import QgsApplication, QgsPalettedRasterRenderer, QgsProcessingUtils, QgsProject

    project = QgsProject.instance()
    project.removeAllMapLayers()
    alg = QgsApplication.processingRegistry().createAlgorithmById("terramind:generate")
    feedback = RecordingFeedback.create()
    parameters = {"S2L2A": str(sample("S2L2A", PLACES[2])), **FAST}
    done = run_as_toolbox(alg, parameters, feedback, qtbot)
    assert done["ok"], feedback.textLog()
    # loaded as a raster outright (no OGR attempt logging "Cannot open … ().()")
    assert done["hints"] and set(done["hints"]) == {QgsProcessingUtils.LayerHint.Raster}
    path = done["results"]["OUTPUT_LULC"]
    assert os.path.exists(path)
    loaded = [l for l in project.mapLayers().values() if l.source() == path]
    assert len(loaded) == 1 and loaded[0].name() == "TerraMind Land cover (10 classes)"
    assert isinstance(loaded[0].renderer(), QgsPalettedRasterRenderer)
    assert feedback.progress_seen and max(feedback.progress_seen) == pytest.approx(100.0)
    project.removeAllMapLayers()


def test_toolbox_run_with_location_loads_the_coordinates_points(backend_python, coords_hub, provider, qtbot):
    """USE_LOCATION and a Location (points) output without destination: a temporary GeoPackage with one point
    per tile, loaded with the engine's point style beside the LULC layer."""
    from qgis.core import QgsApplication, QgsProject, QgsVectorLayer

    from terramind_qgis.vocabulary import OUTPUT_MODALITY_LABELS, index_of

    project = QgsProject.instance()
    project.removeAllMapLayers()
    alg = QgsApplication.processingRegistry().createAlgorithmById("terramind:generate")
    feedback = RecordingFeedback.create()
    location = index_of(OUTPUT_MODALITY_LABELS, "Coordinates")
    parameters = {"S2L2A": str(sample("S2L2A")), **FAST, "OUTPUTS": [4, location], "USE_LOCATION": True,
                  "TILE_SIZE": 112, "OVERLAP": 0}
    done = run_as_toolbox(alg, parameters, feedback, qtbot)
    assert done["ok"], feedback.textLog()
    path = done["results"]["OUTPUT_Coordinates"]
    assert path.endswith(".gpkg") and os.path.exists(path)
    loaded = [l for l in project.mapLayers().values() if l.source().split("|")[0] == path]
    assert len(loaded) == 1 and isinstance(loaded[0], QgsVectorLayer)
    assert loaded[0].featureCount() == 4 and "distance_km" in loaded[0].fields().names()
    assert loaded[0].renderer().symbol().symbolLayer(0).properties()["name"] == "star"  # the engine's .qml
    project.removeAllMapLayers()


def test_graphical_model_runs_generate_and_feeds_its_output_on(backend_python, provider, tmp_path):
    import processing
    from processing.tools import dataobjects
    from qgis.core import (QgsProcessingModelAlgorithm, QgsProcessingModelChildAlgorithm,
                           QgsProcessingModelChildParameterSource as Source, QgsProcessingModelOutput,
                           QgsProcessingModelParameter, QgsProcessingParameterRasterLayer)

    model = QgsProcessingModelAlgorithm("TerraMind LULC and statistics", "tests")
    model.addModelParameter(QgsProcessingParameterRasterLayer("s2", "Sentinel-2 L2A"), QgsProcessingModelParameter("s2"))

    generate = QgsProcessingModelChildAlgorithm("terramind:generate")
    generate.setChildId("generate")
    generate.addParameterSources("S2L2A", [Source.fromModelParameter("s2")])
    # as the model designer does: every other parameter starts at its default, then ours
    for definition in generate.algorithm().parameterDefinitions():
        if definition.defaultValue() is not None and not definition.isDestination():
            generate.addParameterSources(definition.name(), [Source.fromStaticValue(definition.defaultValue())])
    for name, value in {**FAST, "OUTPUTS": [4, 5]}.items():  # NDVI only as an intermediate result
        generate.addParameterSources(name, [Source.fromStaticValue(value)])
    lulc = QgsProcessingModelOutput("lulc", "LULC")
    lulc.setChildId("generate")
    lulc.setChildOutputName("OUTPUT_LULC")
    generate.setModelOutputs({"lulc": lulc})
    model.addChildAlgorithm(generate)

    stats = QgsProcessingModelChildAlgorithm("native:rasterlayerstatistics")
    stats.setChildId("stats")
    stats.addParameterSources("INPUT", [Source.fromChildOutput("generate", "OUTPUT_LULC")])
    stats.addParameterSources("BAND", [Source.fromStaticValue(1)])
    report = QgsProcessingModelOutput("report", "Statistics")
    report.setChildId("stats")
    report.setChildOutputName("OUTPUT_HTML_FILE")
    stats.setModelOutputs({"report": report})
    model.addChildAlgorithm(stats)
    assert model.validate()[0], model.validate()[1]

    out, html = tmp_path / "model_lulc.tif", tmp_path / "stats.html"
    context = dataobjects.createContext(RecordingFeedback.create())
    results = processing.run(model, {"s2": str(sample("S2L2A", PLACES[3])), "generate:lulc": str(out),
                                     "stats:report": str(html)}, context=context)
    assert Path(results["generate:lulc"]) == out and out.exists()
    assert str(out) in html.read_text() or out.name in html.read_text()  # statistics ran on our output
    ndvi = results["CHILD_RESULTS"]["generate"]["OUTPUT_NDVI"]
    assert os.path.exists(ndvi) and ndvi not in context.layersToLoadOnCompletion()  # not a model output


def test_cancel_through_feedback_stops_the_job_and_writes_nothing(backend_python, provider, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    out = tmp_path / "cancelled.tif"
    # 64 px tiles, no overlap, one per batch: 16 batches, so the cancel lands while tiles are running
    feedback = RecordingFeedback.create(cancel_when=lambda value: 0 < value < 100)
    with pytest.raises(QgsProcessingException, match="cancelled"):
        processing.run("terramind:generate", {"S2L2A": str(sample("S2L2A")), **FAST, "TILE_SIZE": 64,
                                              "OVERLAP": 0, "BATCH_SIZE": 1, "OUTPUT_LULC": str(out)},
                       feedback=feedback)
    assert feedback.isCanceled()
    assert not out.exists(), "a cancelled job leaves no output behind"


def test_backend_errors_become_processing_exceptions(backend_python, provider, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    # an extent far away from the input: only the backend knows the rasters do not cover it
    with pytest.raises(QgsProcessingException) as error:
        processing.run("terramind:generate", {"S2L2A": str(sample("S2L2A")), **FAST,
                                              "EXTENT": "0,1000,0,1000 [EPSG:32722]",
                                              "OUTPUT_LULC": str(tmp_path / "never.tif")})
    message = str(error.value)
    assert "extent" in message.lower() and "JobSpec field" in message, message
    assert not (tmp_path / "never.tif").exists()


def test_a_job_that_looks_like_a_mistake_is_refused_until_confirmed(backend_python, provider, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    from terramind_qgis.processing.base import run_job

    params = {"S2L2A": str(sample("S2L2A")), **FAST, "RESOLUTION": 1.0,   # 10x finer than the 10 m input
              "OUTPUT_LULC": str(tmp_path / "never.tif")}
    with pytest.raises(QgsProcessingException) as error:
        processing.run("terramind:generate", params)
    message = str(error.value)
    assert "looks like a mistake" in message and "finer" in message and "CONFIRMED=true" in message, message
    assert not (tmp_path / "never.tif").exists()

    class Client:   # the backend's verdict, recorded: confirmed jobs are not reviewed again
        def __init__(self, reasons):
            self.reasons, self.calls = reasons, []

        def review(self, spec):
            self.calls.append("review")
            return {"problems": [], "confirm": self.reasons}

        def run_job(self, spec, **_):
            self.calls.append("run")
            return {"outputs": []}

    feedback = RecordingFeedback.create()
    quiet = Client([])
    assert run_job({}, feedback, quiet, confirmed=False) == {"outputs": []} and quiet.calls == ["review", "run"]
    accepted = Client(["ignored"])
    run_job({}, feedback, accepted, confirmed=True)
    assert accepted.calls == ["run"]


@pytest.fixture
def qgis_process_env(tmp_path, backend_python):
    """qgis_process with the staged plugin (as the zip installs it) in QGIS_PLUGINPATH and a throw-away profile."""
    if not QGIS_PROCESS.exists():
        pytest.skip("qgis_process.bin not installed")
    plugins = tmp_path / "plugins"
    subprocess.run(["bash", str(REPO / "scripts" / "package.sh"), "--stage-only", str(plugins)], check=True,
                   capture_output=True)
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    env = dict(os.environ, QGIS_PLUGINPATH=str(plugins), QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR=str(runtime),
               QGIS_CUSTOM_CONFIG_PATH=str(tmp_path / "profile"), HF_HUB_CACHE=str(FAKE_HUB), HF_HUB_OFFLINE="1",
               TERRAMIND_BACKEND_PYTHON=str(BACKEND_PYTHON))
    enabled = subprocess.run([str(QGIS_PROCESS), "plugins", "enable", "terramind_qgis"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    return env


def test_qgis_process_lists_and_runs_generate(qgis_process_env, tmp_path):
    listed = subprocess.run([str(QGIS_PROCESS), "list"], env=qgis_process_env, capture_output=True, text=True,
                            timeout=120)
    assert listed.returncode == 0, listed.stderr
    for alg_id in ("terramind:generate", "terramind:embed", "terramind:segment", "terramind:reconstruct"):
        assert alg_id in listed.stdout, listed.stdout[-2000:]

    out = tmp_path / "qp_lulc.tif"
    run = subprocess.run([str(QGIS_PROCESS), "run", "terramind:generate", "--",
                          f"S2L2A={sample('S2L2A', PLACES[4])}", "MODEL=0", "TIMESTEPS=2", "DEVICE=2", "OUTPUTS=4",
                          f"OUTPUT_LULC={out}"], env=qgis_process_env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert out.exists() and f"OUTPUT_LULC:\t{out}" in run.stdout
    assert read_raster(out).crs().authid() == "EPSG:32632"


def test_embed_and_reconstruct_run_on_the_backend(backend_python, provider, tmp_path):
    import processing

    emb, rec = tmp_path / "tim.tif", tmp_path / "lulc_rec.tif"
    results = processing.run("terramind:embed", {"S2L2A": str(sample("S2L2A")), "MODEL": 0, "DEVICE": 2,
                                                 "MODE": 1, "OUTPUT": str(emb)})
    layer = read_raster(results["OUTPUT"])
    assert (layer.width(), layer.height()) == (224 // 16, 224 // 16)  # one pixel per patch
    assert layer.bandCount() == 192 and layer.crs().authid() == "EPSG:32722"  # tiny: width 192
    # the backend's false-colour composite of the first three principal components arrives styled
    from qgis.core import QgsMultiBandColorRenderer

    from terramind_qgis.layers import load_output_layers

    pca = tmp_path / "tim_pca.tif"
    [composite] = load_output_layers({"outputs": [{"name": "embeddings PCA", "path": str(pca), "kind": "embeddings-pca",
                                                   "style": str(tmp_path / "tim_pca.qml")}]}, hillshade=False)
    renderer = composite.renderer()
    assert isinstance(renderer, QgsMultiBandColorRenderer) and composite.bandCount() == 3
    assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (1, 2, 3)
    assert renderer.redContrastEnhancement().minimumValue() == -renderer.redContrastEnhancement().maximumValue() < 0
    assert "principal components" in composite.htmlMetadata()

    results = processing.run("terramind:reconstruct", {"INPUT": str(sample("LULC")), "MODALITY": 4, "DEVICE": 2,
                                                       "OUTPUT": str(rec)})
    layer = read_raster(results["OUTPUT"])
    assert (layer.width(), layer.height(), layer.bandCount()) == (224, 224, 1)
    assert class_values(layer) <= set(range(LULC_CLASSES))


# A TerraTorch-style fine-tuning checkpoint (tiny backbone, UNet decoder, 3 classes), written by the backend's
# own Python: the QGIS side has no torch.
_MAKE_CHECKPOINT = """
import sys, torch
from terramind_backend.models.segmentation import build_segmentation_model
args = dict(backbone="terramind_v1_tiny", backbone_pretrained=False, backbone_modalities=["S2L2A"],
            necks=[{"name": "SelectIndices", "indices": [2, 5, 8, 11]},
                   {"name": "ReshapeTokensToImage", "remove_cls_token": False},
                   {"name": "LearnedInterpolateToPyramidal"}],
            decoder="UNetDecoder", decoder_channels=[32, 16, 16, 8], num_classes=3)
torch.manual_seed(0)
model = build_segmentation_model(args)
torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "hyper_parameters": {"model_factory": "EncoderDecoderFactory", "task": "segmentation",
                                 "model_args": args, "class_names": ["Other", "Water", "Trees"]}}, sys.argv[1])
"""


def test_segment_runs_a_fine_tuned_checkpoint(backend_python, provider, tmp_path):
    import processing

    checkpoint = tmp_path / "seg.ckpt"
    made = subprocess.run([str(BACKEND_PYTHON), "-c", _MAKE_CHECKPOINT, str(checkpoint)], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert made.returncode == 0, made.stderr[-3000:]
    classes, probabilities = tmp_path / "classes.tif", tmp_path / "probabilities.tif"
    results = processing.run("terramind:segment", {
        "CHECKPOINT": str(checkpoint), "S2L2A": str(sample("S2L2A")), "DEVICE": 2, "TILE_SIZE": 224, "OVERLAP": 0,
        "OUTPUT": str(classes), "OUTPUT_PROBABILITIES": str(probabilities)})
    assert Path(results["OUTPUT"]) == classes and Path(results["OUTPUT_PROBABILITIES"]) == probabilities
    assert class_values(read_raster(classes)) <= {0, 1, 2}
    assert read_raster(probabilities).bandCount() == 3
    assert 'label="Water"' in classes.with_suffix(".qml").read_text()
