"""Precision has one home (`models/precision.py`): one list of names, one resolution of `auto`, one bf16 policy."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO
from terramind_backend.models import precision


def _fresh_modules(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", "import json, sys; " + code], capture_output=True, text=True,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "backend" / "src")})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_jobspec_shares_the_names_without_torch_and_the_policy_needs_no_tokenizer():
    seen = _fresh_modules("from terramind_backend.engine import jobspec; "
                          "print(json.dumps({'torch': 'torch' in sys.modules}))")
    assert seen == {"torch": False}
    seen = _fresh_modules("from terramind_backend.models import bf16_weights, precision; "
                          "print(json.dumps({'tok': 'terramind_backend.models.tokenizers' in sys.modules}))")
    assert seen == {"tok": False}  # no bf16_weights ⇄ tokenizer circle


def test_names_checked_in_one_place():
    from terramind_backend.engine import JobValidationError, parse_jobspec

    for name in precision.PRECISIONS:
        assert precision.check_precision(name) == name
        assert precision.resolve_precision(name, torch.device("cpu")) in ("fp32", "bf16")
    with pytest.raises(ValueError, match="'auto', 'fp32', 'bf16'"):
        precision.check_precision("fp16")
    with pytest.raises(JobValidationError, match="auto, fp32, bf16"):
        parse_jobspec({"task": "embed", "inputs": {"S2L2A": "a.tif"}, "outputs": {"embeddings": "e.tif"},
                       "options": {"precision": "fp16"}})
