"""The dialog's confidence/entropy and spread options: what they add to the JobSpec, and that they are
remembered like the other choices."""
from __future__ import annotations

from test_dialog import _valid, dialog, layers  # noqa: F401  (fixtures)
from terramind_qgis.dialog import TerraMindDialog


def test_uncertainty_options_reach_the_jobspec_for_generation_only(dialog, layers, qgis_iface):  # noqa: F811
    _valid(dialog, layers)
    row = dialog.uncertainty_row
    assert "uncertainty" not in dialog.jobspec()["options"]
    assert not row.samples_spin.isEnabled()
    row.confidence_check.setChecked(True)
    row.spread_check.setChecked(True)
    assert row.samples_spin.isEnabled()
    row.samples_spin.setValue(6)
    assert dialog.jobspec()["options"]["uncertainty"] == {"confidence": True, "spread": True, "samples": 6}

    dialog._save_settings()
    again = TerraMindDialog(qgis_iface)
    try:
        assert again.uncertainty_row.options() == {"confidence": True, "spread": True, "samples": 6}
    finally:
        again.deleteLater()

    dialog.embed_radio.setChecked(True)
    assert "uncertainty" not in dialog.jobspec()["options"]
