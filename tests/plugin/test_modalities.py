"""Modality guessing and band mapping: pure rules, then the real TerraMesh samples as QgsRasterLayers."""
from __future__ import annotations

import shutil

import pytest
from osgeo import gdal
from qgis.core import QgsRasterLayer

from tests.conftest import sample
from terramind_qgis.jobspec_builder import InputChoice, JobChoices, Problem, build_jobspec, check_job
from terramind_qgis.jobspec_builder import JobSpecError
from terramind_qgis.modalities import (MODALITIES, RasterFacts, band_name_from_description, default_band_mapping,
                                       guess_modality, mapping_problem)

gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")   # reading the shared samples must not write .aux.xml beside them
L2A_CODES = "B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12".split()


# -- rules, no files -------------------------------------------------------------------------------
@pytest.mark.parametrize("facts, modality", [
    (RasterFacts(12, "Int16"), "S2L2A"),
    (RasterFacts(13, "UInt16"), "S2L1C"),
    (RasterFacts(13, "UInt16", hints=("S2B_MSIL2A_20210723",)), "S2L2A"),
    (RasterFacts(3, "Byte"), "RGB"),
    (RasterFacts(4, "Byte"), "RGB"),
    (RasterFacts(2, "Float32"), "S1RTC"),
    (RasterFacts(2, "Float32", hints=("S1A_IW_GRDH_1SDV",)), "S1GRD"),
    (RasterFacts(2, "Float32", ("Sigma0_VV_db", "Sigma0_VH_db")), "S1GRD"),
    (RasterFacts(2, "Float32", ("Gamma0_VV", "Gamma0_VH")), "S1RTC"),
    (RasterFacts(1, "Int16"), "DEM"),
    (RasterFacts(1, "Float32", value_range=(-12.0, 2900.0)), "DEM"),
    (RasterFacts(1, "Float32", value_range=(-0.4, 0.9)), "NDVI"),
    (RasterFacts(1, "Float32", hints=("ndvi_2021",)), "NDVI"),
    (RasterFacts(1, "Byte"), "LULC"),
    (RasterFacts(1, "Byte", ("elevation",)), "DEM"),
    (RasterFacts(7, "UInt16"), None),
])
def test_guess_from_band_count_type_and_names(facts, modality):
    assert guess_modality(facts).modality == modality


def test_names_that_are_parts_of_longer_names():
    assert band_name_from_description("Red Edge 1") == "RED_EDGE_1"
    assert band_name_from_description("red") == "RED"
    assert band_name_from_description("B8A (865 nm)") == "NIR_NARROW"
    assert band_name_from_description("B08") == "NIR_BROAD"
    assert band_name_from_description("SWIR 2") == "SWIR_2"
    assert band_name_from_description("Band 1") is None
    assert band_name_from_description("") is None


def test_descriptions_reorder_bands_whatever_the_count():
    shuffled = ["B02", "B03", "B04", "B08", "B01", "B05", "B06", "B07", "B8A", "B09", "B11", "B12", "SCL"]
    facts = RasterFacts(13, "UInt16", tuple(shuffled))
    guess = guess_modality(facts)
    assert (guess.modality, guess.confidence) == ("S2L2A", "high")
    assert default_band_mapping("S2L2A", facts) == [shuffled.index(c) + 1 for c in L2A_CODES]
    rgb = RasterFacts(3, "Byte", ("Blue", "Green", "Red"))
    assert default_band_mapping("RGB", rgb) == [3, 2, 1]
    ten_metre = RasterFacts(4, "UInt16", ("B02", "B03", "B04", "B08"))    # reflectance, not 0–255
    guess = guess_modality(ten_metre)
    assert (guess.modality, guess.confidence) == ("RGB", "low") and "not 8-bit" in guess.reason
    assert default_band_mapping("RGB", ten_metre) == [3, 2, 1]


def test_layout_mappings():
    l1c = RasterFacts(13, "Int16")
    assert default_band_mapping("S2L2A", l1c) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13]   # band 11 = B10
    assert default_band_mapping("RGB", RasterFacts(12, "Int16")) == [4, 3, 2]
    assert default_band_mapping("S2L1C", RasterFacts(12, "Int16"))[-1] is None     # no cirrus to invent
    assert mapping_problem("S2L1C", default_band_mapping("S2L1C", RasterFacts(12, "Int16")), 12) \
        == "Choose a raster band for SWIR_2"
    assert mapping_problem("S1RTC", [1, 1], 2) == "Raster band 1 is used for more than one model band"
    assert mapping_problem("S1RTC", [1, 3], 2) == "Band 3 does not exist (the raster has 2)"
    assert mapping_problem("S1RTC", [2, 1], 2) is None


# -- real TerraMesh samples ------------------------------------------------------------------------
SAMPLES = [("S2L2A", "S2L2A"), ("S2L1C", "S2L1C"), ("S2RGB", "RGB"), ("S1RTC", "S1RTC"), ("DEM", "DEM"),
           ("LULC", "LULC"), ("NDVI", "NDVI")]


def _layer(path) -> QgsRasterLayer:
    layer = QgsRasterLayer(str(path), path.stem)
    assert layer.isValid(), path
    return layer


@pytest.mark.parametrize("folder, modality", SAMPLES)
def test_real_samples_are_guessed_from_their_content(qgis_app, tmp_path, folder, modality):
    from terramind_qgis.widgets.input_row import raster_facts

    # A neutral file name, so the guess comes from bands, data type and values, not from the folder name.
    neutral = tmp_path / "scene.tif"
    shutil.copy(sample(folder), neutral)
    facts = raster_facts(_layer(neutral))
    guess = guess_modality(facts)
    assert guess.modality == modality, guess
    mapping = default_band_mapping(modality, facts)
    assert mapping == list(range(1, MODALITIES[modality].band_count + 1))
    assert mapping_problem(modality, mapping, facts.band_count) is None
    # With its real path the folder name agrees (and never contradicts the band count).
    assert guess_modality(raster_facts(_layer(sample(folder)))).modality == modality


def test_real_l1c_used_as_l2a_drops_the_cirrus_band(qgis_app):
    from terramind_qgis.widgets.input_row import raster_facts

    l1c, l2a = _layer(sample("S2L1C")), _layer(sample("S2L2A"))
    mapping = default_band_mapping("S2L2A", raster_facts(l1c))
    assert mapping == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13]
    # The dropped band really is the cirrus band: darkest of all L1C bands at this place.
    means = [l1c.dataProvider().bandStatistics(b).mean for b in range(1, 14)]
    assert min(range(13), key=means.__getitem__) == 10
    assert l2a.bandCount() == len(mapping)


def test_real_bands_named_and_shuffled_are_put_back_in_model_order(qgis_app, tmp_path):
    """Write the S2L2A sample with its bands shuffled and named; the mapping must restore the model order."""
    from terramind_qgis.widgets.input_row import raster_facts

    src = gdal.Open(str(sample("S2L2A")))
    order = [2, 3, 4, 8, 1, 5, 6, 7, 9, 10, 11, 12]                 # file band k holds original band order[k-1]
    path = tmp_path / "stack.tif"
    dst = gdal.GetDriverByName("GTiff").Create(str(path), src.RasterXSize, src.RasterYSize, 12, gdal.GDT_Int16)
    dst.SetGeoTransform(src.GetGeoTransform())
    dst.SetProjection(src.GetProjection())
    for k, original in enumerate(order, start=1):
        band = dst.GetRasterBand(k)
        band.WriteArray(src.GetRasterBand(original).ReadAsArray())
        band.SetDescription(L2A_CODES[original - 1])
    dst = None

    facts = raster_facts(_layer(path))
    guess = guess_modality(facts)
    assert (guess.modality, guess.confidence) == ("S2L2A", "high")
    mapping = default_band_mapping("S2L2A", facts)
    shuffled = gdal.Open(str(path))
    for model_index, file_band in enumerate(mapping, start=1):
        assert (shuffled.GetRasterBand(file_band).ReadAsArray()
                == src.GetRasterBand(model_index).ReadAsArray()).all()


# -- JobSpec builder, no QGIS ----------------------------------------------------------------------
def _choices(tmp_path, **kw) -> JobChoices:
    s2 = sample("S2L2A")
    base = dict(inputs=[InputChoice("S2L2A", str(s2), 12, list(range(1, 13)), row="1")], outputs=["LULC"],
                output_dir=str(tmp_path / "out"), job_name="job")
    base.update(kw)
    return JobChoices(**base)


def test_builder_writes_jobspec_v1(tmp_path):
    s1 = sample("S1RTC")
    choices = _choices(tmp_path, outputs=["LULC", "NDVI"],
                       inputs=[InputChoice("S2L2A", str(sample("S2L2A")), 12, list(range(1, 13)), row="1"),
                               InputChoice("S1RTC", f"{s1}|option", 2, [2, 1], row="2")])
    spec = build_jobspec(choices)
    assert spec["version"] == 1 and spec["task"] == "generate" and spec["model"] == "terramind_v1_tiny"
    assert spec["inputs"] == {
        "S2L2A": {"path": str(sample("S2L2A")), "bands": None, "scale": None, "offset": None, "nodata": None},
        "S1RTC": {"path": str(s1), "bands": [2, 1], "scale": None, "offset": None, "nodata": None}}
    assert spec["outputs"] == {"LULC": str(tmp_path / "out" / "job_lulc.tif"),
                               "NDVI": str(tmp_path / "out" / "job_ndvi.tif")}
    assert spec["extent"] is None and spec["crs"] is None
    assert spec["tiling"] == {"window": 224, "overlap": 32, "batch_size": 8}


@pytest.mark.parametrize("change, field, words", [
    (dict(inputs=[]), "inputs", "at least one input"),
    (dict(outputs=[]), "outputs", "at least one output"),
    (dict(outputs=["RGB"]), "outputs", "Unknown output RGB"),
    (dict(outputs=["S2L2A"]), "outputs", "both an input and an output"),
    (dict(extent_bounds=(5.0, 5.0, 5.0, 9.0), extent_crs="EPSG:32722"), "extent", "extent is empty"),
    (dict(output_dir=None), "output_dir", "Choose an output folder"),
    (dict(window=200), "tiling.window", "multiple of the 16 px patch"),
    (dict(overlap=120), "tiling.overlap", "overlap must be"),
    (dict(task="tim-embed", tim_modalities=[]), "options.tim_modalities", "at least one modality"),
    (dict(resolution=0.0), "resolution", "greater than 0"),
])
def test_builder_names_the_field_at_fault(tmp_path, change, field, words):
    problems = check_job(_choices(tmp_path, **change))
    assert [p.field for p in problems] == [field], problems
    assert words in problems[0].message
    with pytest.raises(JobSpecError):
        build_jobspec(_choices(tmp_path, **change))


def test_builder_refuses_unwritable_folders_and_overwriting_inputs(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert check_job(_choices(tmp_path, output_dir=str(a_file))) == [
        Problem("output_dir", f"{a_file} is a file, not a folder")]
    copy = tmp_path / "job_lulc.tif"
    shutil.copy(sample("LULC"), copy)
    problems = check_job(_choices(tmp_path, output_dir=str(tmp_path),
                                  inputs=[InputChoice("S2L2A", str(sample("S2L2A")), 12, None, row="1"),
                                          InputChoice("LULC", str(copy), 1, None, row="2")], outputs=["NDVI", "LULC"]))
    assert Problem("output_dir", "The LULC output would overwrite the input job_lulc.tif") in problems
