"""`terramind run | generate | embed` over the engine: exit codes, outputs, progress streams."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import FAKE_HUB, REPO, coords_hub, fake_hub, sample  # noqa: F401  (fixtures)
from terramind_backend.cli import build_parser, main
from terramind_backend.commands.jobs import EXIT_INVALID as EXIT_INVALID_JOB, build_spec
from engine_helpers import analytic, ndvi_of, read  # noqa: F401  (fixture)


def test_generate_writes_outputs_and_lists_them(tmp_path, analytic, capsys):  # noqa: F811
    rc = main(["generate", "--in", f"S2L2A={sample('S2L2A')}", "--out", f"LULC={tmp_path / 'l.tif'}",
               "--out", f"NDVI={tmp_path / 'n.tif'}", "--window", "96", "--overlap", "32", "--batch", "2",
               "--device", "cpu"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert f"LULC: {tmp_path / 'l.tif'}" in out.out and f"NDVI: {tmp_path / 'n.tif'}" in out.out
    s2, _ = read(sample("S2L2A"))
    np.testing.assert_allclose(read(tmp_path / "n.tif")[0][0], ndvi_of(s2.astype(np.float32)), atol=1e-5)


def test_json_progress_stream(tmp_path, analytic, capsys):  # noqa: F811
    rc = main(["generate", "--in", f"S2L2A={sample('S2L2A')}", "--out", f"NDVI={tmp_path / 'n.tif'}",
               "--window", "96", "--device", "cpu", "--json-progress"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rc == 0
    progress = [e for e in lines if e["event"] == "progress" and e["stage"] == "tiles"]
    assert progress[-1]["done"] == progress[-1]["total"] == 9
    assert lines[-1]["event"] == "result" and lines[-1]["outputs"][0]["path"] == str(tmp_path / "n.tif")


def test_run_job_file_with_relative_paths(tmp_path, analytic, capsys):  # noqa: F811
    (tmp_path / "out").mkdir()
    job = {"version": 1, "task": "generate", "inputs": {"S2L2A": {"path": str(sample("S2L2A"))}},
           "outputs": {"LULC": "out/lulc.tif"}, "device": "cpu", "tiling": {"window": 224, "overlap": 32}}
    (tmp_path / "job.json").write_text(json.dumps(job))
    rc = main(["run", str(tmp_path / "job.json"), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "lulc.tif").exists() and (tmp_path / "out" / "lulc.qml").exists()


def test_bands_and_bounds_options():
    args = build_parser().parse_args(
        ["generate", "--in", "S2L2A=a.tif", "--bands", "S2L2A=" + ",".join(str(b) for b in range(12, 0, -1)),
         "--out", "LULC=l.tif", "--bounds", "1", "2", "3", "4", "--bounds-crs", "EPSG:32633", "--timesteps", "5"])
    spec = build_spec(args)
    assert spec["inputs"]["S2L2A"]["bands"] == list(range(12, 0, -1))
    assert spec["extent"] == {"bounds": [1.0, 2.0, 3.0, 4.0], "crs": "EPSG:32633"}
    assert spec["timesteps"] == 5 and spec["outputs"] == {"LULC": "l.tif"}


@pytest.mark.parametrize("argv_tail,message", [
    (["--out", "LULC={missing}/l.tif"], "invalid job [outputs.LULC]: Output LULC: folder"),
    (["--out", "RGB={out}/rgb.tif"], "invalid job [outputs.RGB]: generate cannot produce 'RGB'"),
    (["--out", "LULC={out}/l.tif", "--window", "100"], "invalid job [tiling.window]"),
])
def test_invalid_jobs_exit_2_and_write_nothing(tmp_path, analytic, capsys, argv_tail, message):  # noqa: F811
    argv = ["generate", "--in", f"S2L2A={sample('S2L2A')}", "--device", "cpu"]
    argv += [a.format(missing=tmp_path / "missing", out=tmp_path) for a in argv_tail]
    rc = main(argv)
    assert rc == 2
    assert message in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_unreadable_job_file_exits_2(tmp_path, capsys):
    (tmp_path / "job.json").write_text("{not json")
    assert main(["run", str(tmp_path / "job.json")]) == 2
    assert "is not valid JSON" in capsys.readouterr().err


def test_failed_job_exits_1_and_leaves_nothing(tmp_path, analytic, capsys):  # noqa: F811
    analytic.fail_at = 1
    rc = main(["generate", "--in", f"S2L2A={sample('S2L2A')}", "--out", f"NDVI={tmp_path / 'n.tif'}",
               "--window", "96", "--batch", "2", "--device", "cpu"])
    assert rc == 1
    assert "analytic predictor failure on purpose" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_cli_module_imports_neither_torch_nor_rasterio():
    code = ("import sys; import terramind_backend.commands.jobs as j; "
            "print(json.dumps(['torch' in sys.modules, 'rasterio' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "backend" / "src")})
    assert json.loads(out.stdout) == [False, False], out.stderr


def test_console_script_embed_end_to_end(tmp_path, fake_hub):  # noqa: F811
    env = {**os.environ, "HF_HUB_CACHE": str(FAKE_HUB), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO / "backend" / "src")}
    out = subprocess.run([sys.executable, "-m", "terramind_backend", "embed", "--in", f"S2L2A={sample('S2L2A')}",
                          "--out", str(tmp_path / "emb.tif"), "--device", "cpu", "--json-progress"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["event"] == "result" and result["outputs"][0]["kind"] == "embeddings"
    emb, prof = read(tmp_path / "emb.tif")
    assert emb.shape == (192, 14, 14)



def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    rc = main(["embed", "--in", f"S2L2A={sample('S2L2A')}", "--out", str(tmp_path / "e.tif"), "--window", "96",
               "--dry-run"])
    plan = json.loads(capsys.readouterr().out)
    assert rc == 0 and plan["windows"] == 9 and plan["batches"] == 2
    assert plan["grid"]["width"] == 224 and plan["grid"]["crs"] == "EPSG:32722"
    assert os.listdir(tmp_path) == []


def test_ctrl_c_exits_130_and_leaves_nothing(tmp_path, analytic, capsys):  # noqa: F811
    analytic.fail_at, analytic.fail_with = 1, KeyboardInterrupt
    rc = main(["generate", "--in", f"S2L2A={sample('S2L2A')}", "--out", f"NDVI={tmp_path / 'n.tif'}",
               "--window", "96", "--batch", "2", "--device", "cpu"])
    assert rc == 130
    assert "cancelled; no output was written" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_segment_subcommand_runs_a_fine_tuned_checkpoint(tmp_path, capsys):
    from test_segmentation import _random_checkpoint

    ckpt = _random_checkpoint(tmp_path)
    argv = ["segment", "--in", f"S2L2A={sample('S2L2A')}", "--out", str(tmp_path / "classes.tif"),
            "--probabilities", str(tmp_path / "p.tif"), "--device", "cpu", "--overlap", "0", "--quiet"]
    assert main(argv[:-1] + ["--dry-run"]) == EXIT_INVALID_JOB  # no --checkpoint: a clear validation error
    assert "[options.checkpoint]" in capsys.readouterr().err
    assert main(argv + ["--checkpoint", str(ckpt)]) == 0, capsys.readouterr().err
    classes, prof = read(tmp_path / "classes.tif")
    assert classes.shape == (1, 224, 224) and prof["dtype"] == "uint8" and set(np.unique(classes)) <= {0, 1, 2}
    assert read(tmp_path / "p.tif")[0].shape == (3, 224, 224)
    spec = build_spec(build_parser().parse_args(argv + ["--checkpoint", "m.ckpt"]))
    assert spec["outputs"] == {"classes": str(tmp_path / "classes.tif"), "probabilities": str(tmp_path / "p.tif")}


def test_generate_with_location_and_coordinates_output(tmp_path, coords_hub, capsys):  # noqa: F811
    rc = main(["generate", "--in", f"S2L2A={sample('S2L2A')}", "--out", f"LULC={tmp_path / 'lulc.tif'}",
               "--out", f"Coordinates={tmp_path / 'where.gpkg'}", "--use-location", "--window", "112",
               "--overlap", "0", "--timesteps", "1", "--device", "cpu", "--precision", "fp32", "--json-progress"])
    assert rc == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert [o["kind"] for o in result["outputs"]] == ["classes", "points"]
    assert sorted(os.listdir(tmp_path)) == ["lulc.qml", "lulc.tif", "lulc.tif.aux.xml", "where.gpkg", "where.qml"]
    spec = build_spec(build_parser().parse_args(["embed", "--in", "S2L2A=a.tif", "--out", "e.tif", "--use-location"]))
    assert spec["options"]["use_location"] is True
