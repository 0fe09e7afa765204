"""JobSpec values a hostile or careless client can send: infinite numbers, a wrong base_dir type, a
relative checkpoint path. Each is a validation error naming the field (never a Python exception)."""
from __future__ import annotations

import json

import pytest

from tests.conftest import sample
from terramind_backend.engine import JobValidationError, parse_jobspec, validate_job


def _spec(out_dir, **over):
    spec = {"version": 1, "task": "embed", "model": "terramind_v1_tiny",
            "inputs": {"S2L2A": {"path": str(sample("S2L2A"))}},
            "outputs": {"embeddings": str(out_dir / "emb.tif")}, "device": "cpu"}
    spec.update(over)
    return spec


@pytest.mark.parametrize("change, field", [
    ({"resolution": "1e999"}, "resolution"),
    ({"seed": "Infinity"}, "seed"),
    ({"timesteps": "-Infinity"}, "timesteps"),
    ({"tiling": {"window": "Infinity"}}, "tiling.window"),
    ({"extent": {"bounds": [0, 0, "Infinity", 10], "crs": "EPSG:32722"}}, "extent.bounds"),
    ({"inputs": {"S2L2A": {"path": "x.tif", "scale": "NaN"}}}, "inputs.S2L2A.scale"),
    ({"options": {"layer": "1e999"}}, "options.layer"),
])
def test_infinite_numbers_from_json_are_refused_with_the_field(tmp_path, change, field):
    # the numbers travel through JSON exactly as a client would send them (Python's json reads these)
    text = json.dumps(_spec(tmp_path, **change))
    for literal in ("1e999", "Infinity", "-Infinity", "NaN"):
        text = text.replace(f'"{literal}"', literal)
    with pytest.raises(JobValidationError) as info:
        parse_jobspec(json.loads(text))
    assert info.value.field == field
    assert "finite number" in str(info.value) or "integer" in str(info.value)


@pytest.mark.parametrize("base_dir", [3, ["/tmp"], {"dir": "/tmp"}, True])
def test_base_dir_of_the_wrong_type_is_a_validation_error(tmp_path, base_dir):
    with pytest.raises(JobValidationError, match="base_dir must be a folder path") as info:
        parse_jobspec(_spec(tmp_path, outputs={"embeddings": "emb.tif"}), base_dir=base_dir)
    assert info.value.field == "base_dir"


def test_relative_checkpoint_resolves_against_base_dir_and_is_checked(tmp_path):
    spec = _spec(tmp_path, task="segment", outputs={"classes": "classes.tif"},
                 options={"checkpoint": "models/seg.pt"})
    with pytest.raises(JobValidationError, match="file not found") as info:
        validate_job(spec, base_dir=str(tmp_path))
    assert info.value.field == "options.checkpoint"
    assert str(tmp_path / "models" / "seg.pt") in str(info.value)
    parsed = parse_jobspec(spec, base_dir=str(tmp_path))
    assert parsed.options.checkpoint == str(tmp_path / "models" / "seg.pt")
    assert parsed.outputs["classes"] == str(tmp_path / "classes.tif")
