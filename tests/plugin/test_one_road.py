"""One road to the JobSpec: the dialog and the Processing algorithms fill the same `JobChoices`, so the same
choices made through either door give the same JobSpec, and Processing's defaults are the dialog's."""
from __future__ import annotations

import pytest

from test_dialog import _valid, dialog, layers  # noqa: F401  (fixtures)
from test_processing import algorithm, spec_for
from terramind_qgis.processing.base import PROCESSING_DEVICES
from terramind_qgis.vocabulary import EMBED_MODES, MERGE_METHODS, MODEL_SIZES, OUTPUT_MODALITY_LABELS, index_of, values


def _dialog_spec(dlg, layers, task):
    _valid(dlg, layers)   # S2L2A + S1RTC → LULC + NDVI, saved to tmp_path/out as job_*.tif
    dlg.device_combo.setCurrentIndex(dlg.device_combo.findData("cpu"))
    dlg.seed_spin.setValue(7)
    dlg.steps_spin.setValue(3)
    if task != "generate":
        dlg.embed_radio.setChecked(True)
        dlg.embed_mode_combo.setCurrentIndex(dlg.embed_mode_combo.findData(task))
        dlg.merge_combo.setCurrentIndex(dlg.merge_combo.findData("max"))
        for name, check in dlg.tim_checks.items():
            check.setChecked(name in ("LULC", "NDVI"))
    assert dlg.refresh() == []
    return dlg.jobspec()


@pytest.mark.parametrize("task", ["generate", "embed", "tim-embed"])
def test_dialog_and_processing_write_the_same_jobspec(dialog, layers, provider, task):  # noqa: F811
    expected = _dialog_spec(dialog, layers, task)
    parameters = {"S2L2A": layers["S2L2A"].source(), "S1RTC": layers["S1RTC"].source(),
                  "RESOLUTION": expected["resolution"], "DEVICE": index_of(PROCESSING_DEVICES, "cpu"),
                  "SEED": 7}   # no MODEL: Processing's default size must be the dialog's
    if task == "generate":
        alg_id = "terramind:generate"
        parameters.update(OUTPUTS=[], TIMESTEPS=3, **{f"OUTPUT_{k}": path for k, path in expected["outputs"].items()})
    else:
        alg_id = "terramind:embed"
        parameters.update(MODE=index_of(EMBED_MODES, task), TIMESTEPS=3, MERGE_METHOD=index_of(MERGE_METHODS, "max"), OUTPUT=expected["outputs"]["embeddings"],
                          TIM_MODALITIES=[index_of(OUTPUT_MODALITY_LABELS, m) for m in ("LULC", "NDVI")])
    spec, _, _ = spec_for(alg_id, parameters)
    assert spec == expected


def test_processing_default_model_is_the_dialogs(dialog, provider):  # noqa: F811
    for alg_id in ("terramind:generate", "terramind:embed", "terramind:finetune"):
        alg = algorithm(alg_id)
        default = alg.parameterDefinition("MODEL").defaultValue()
        assert values(MODEL_SIZES)[default] == dialog.size_combo.currentData() == "tiny", alg_id
