"""Generation and Thinking-in-Modalities parity with TerraTorch 1.1.1 (shared random official-layout weights).

Both implementations load ``.cache/fake-hub`` (tiny + tokenizers, random weights written by TerraTorch) and
run in one process. TerraTorch seeds its sampler from Python's ``random`` and reseeds torch's global RNG
per step, then draws diffusion noise from it; ours uses private generators seeded the same way, so the same
``random.seed`` must give the same tokens, the same noise and the same outputs:

- sampling primitives (top-k, top-p, greedy, multinomial, token budgets) equal TerraTorch's bit for bit;
- greedy generation (temps=0): identical tokens, identical outputs (LULC logits via the ViT decoder, DEM
  via 2 DDIM steps from the same initial noise);
- seeded nucleus sampling (temps=1, top_p=0.8): identical tokens and outputs, also through ``seed=``;
- TiM: per-layer embeddings within 1e-5 (relative) for seeded and greedy imagination, 'dict' quirk kept.

Importing TerraTorch switches torch's float32 matmul precision to "medium" (Lightning), which makes CPU
``scaled_dot_product_attention`` run in reduced precision; the fixtures set it back to "highest".
"""
from __future__ import annotations

import gc
import random

import pytest
import torch


pytest.importorskip("terratorch")

from terramind_backend.models import build_model  # noqa: E402
from terramind_backend.models import sampling  # noqa: E402

REL = 1e-4


def _terratorch_registry():
    from terratorch.registry import BACKBONE_REGISTRY, FULL_MODEL_REGISTRY

    torch.set_float32_matmul_precision("highest")  # see module docstring
    return BACKBONE_REGISTRY, FULL_MODEL_REGISTRY


def _offline_fake_hub(mp: pytest.MonkeyPatch) -> None:
    """Point both implementations at the fake hub. huggingface_hub reads HF_HUB_CACHE/HF_HUB_OFFLINE into
    ``constants`` at import (TerraTorch imports it first), so those are patched too."""
    from tests.conftest import FAKE_HUB
    from huggingface_hub import constants

    if not (FAKE_HUB / ".complete").exists():
        pytest.fail(f"{FAKE_HUB} missing: run scripts/fake_hub.sh")
    mp.setenv("HF_HUB_CACHE", str(FAKE_HUB))
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setattr(constants, "HF_HUB_CACHE", str(FAKE_HUB))
    mp.setattr(constants, "HF_HUB_OFFLINE", True)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12))


def _s2(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 1000 + torch.rand(batch, 12, size, size, generator=g) * 3000  # plausible S2 L2A reflectances


# ---------------------------------------------------------------------------------------------- sampling
def test_sampling_primitives_match_terratorch():
    from terratorch.models.backbones.terramind.model.generate import GenerationSampler, linear_schedule

    for steps in range(1, 12):
        for n in (1, 7, 16, 196, 280):
            assert sampling.linear_token_budget(steps, n) == list(linear_schedule(steps, n))
    reference = GenerationSampler(torch.nn.Identity())
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(64, 4375, generator=g) * 4
    tied = (logits * 2).round() / 2  # many logits tie with the nucleus boundary: TerraTorch's sort order decides
    for values in (logits, tied):
        for top_k, top_p in ((0, 0.8), (20, 0.0), (50, 0.9), (0.01, 0.5), (0, 0.0), (0, 0.99)):
            ours = sampling.filter_top_p(sampling.filter_top_k(values.clone(), top_k), top_p)
            assert torch.equal(ours, reference.top_k_top_p_filtering(values.clone(), top_k, top_p))
    for temperature in (1.0, 0.7, 0.0):
        torch.manual_seed(11)
        expected, _ = reference.sample_tokens(logits.clone(), temperature, 0, 0.8)
        got = sampling.sample_tokens(logits.clone(), temperature=temperature, top_p=0.8,
                                     generator=torch.Generator().manual_seed(11))
        assert torch.equal(got, expected)


# ---------------------------------------------------------------------------------------------- generation
OUTPUTS = ["LULC", "DEM"]


@pytest.fixture(scope="class")
def generators(request):
    """(ours, TerraTorch) S2L2A -> [LULC, DEM], standardized, 2 diffusion steps; temperature set per test."""
    mp = pytest.MonkeyPatch()
    _offline_fake_hub(mp)
    _, full = _terratorch_registry()
    kwargs = dict(modalities=["S2L2A"], output_modalities=OUTPUTS, pretrained=True, timesteps=2, standardize=True)
    ours = build_model("terramind_v1_tiny_generate", **kwargs)
    ref = full.build("terramind_v1_tiny_generate", **kwargs).eval()
    yield ours, ref
    del ours, ref
    mp.undo()
    gc.collect()


def _set_temperature(ours, ref, temperature: float) -> None:
    ours.temps = [temperature] * len(ours.output_keys)
    ref.temps = temperature  # TerraTorch reads it at forward time


def _run_reference(ref, x: torch.Tensor, python_seed: int):
    """TerraTorch forward with its Python-random seeding; also returns the tokens it decoded."""
    tokens = {}
    originals = {}
    for key, tok in ref.tokenizer.items():
        originals[key] = tok.decode_tokens

        def capture(t, _key=key, _orig=tok.decode_tokens, **kw):
            tokens[_key] = t.clone()
            return _orig(t, **kw)
        tok.decode_tokens = capture
    try:
        random.seed(python_seed)
        with torch.no_grad():
            out = ref({"S2L2A": x.clone()})
    finally:
        for key, tok in ref.tokenizer.items():
            tok.decode_tokens = originals[key]
    return out, tokens


def _compare(ours_out, ours_tokens, ref_out, ref_tokens):
    for name, key in (("LULC", "tok_lulc@224"), ("DEM", "tok_dem@224")):
        assert torch.equal(ours_tokens[name].long(), ref_tokens[key].long()), f"{name} tokens differ"
        assert ours_out[name].shape == ref_out[name].shape
        assert _rel(ours_out[name], ref_out[name]) <= REL, name


@pytest.mark.slow
class TestGeneration:
    @pytest.mark.parametrize("temperature,size,batch", [(0.0, 64, 2), (1.0, 224, 1)])
    def test_same_python_seed_same_tokens_and_outputs(self, generators, temperature, size, batch):
        ours, ref = generators
        _set_temperature(ours, ref, temperature)
        x = _s2(batch, size)
        ref_out, ref_tokens = _run_reference(ref, x, python_seed=5)
        random.seed(5)
        tokens, info = ours.generate_tokens({"S2L2A": x})
        out = ours.decode_outputs(tokens, info)
        _compare(out, tokens, ref_out, ref_tokens)
        assert out["LULC"].shape == (batch, 10, size, size) and out["DEM"].shape == (batch, 1, size, size)
        if temperature:  # sampled tokens are not all alike, so the comparison above is meaningful
            assert len(torch.unique(tokens["LULC"])) > 10

    def test_explicit_seed_reproduces_terratorch(self, generators):
        ours, ref = generators
        _set_temperature(ours, ref, 1.0)
        x = _s2(2, 64, seed=3)
        ref_out, ref_tokens = _run_reference(ref, x, python_seed=9)
        random.seed(9)
        seed = random.randint(-(2 ** 31), 2 ** 31 - 1)  # what TerraTorch draws
        random.seed(12345)  # ours must not depend on Python's random when given a seed
        state = torch.get_rng_state()
        tokens, info = ours.generate_tokens({"S2L2A": x}, seed=seed)
        out = ours.decode_outputs(tokens, info)
        assert torch.equal(state, torch.get_rng_state()), "generation must not touch torch's global RNG"
        _compare(out, tokens, ref_out, ref_tokens)


@pytest.mark.slow
def test_tokenized_input_generation_matches(monkeypatch):
    """LULC class map in (through the LULC tokenizer) -> DEM out, seeded sampling, 2 DDIM steps."""
    _offline_fake_hub(monkeypatch)
    _, full = _terratorch_registry()
    kwargs = dict(modalities=["LULC"], output_modalities=["DEM"], pretrained=True, timesteps=2, standardize=True)
    ours = build_model("terramind_v1_tiny_generate", **kwargs)
    ref = full.build("terramind_v1_tiny_generate", **kwargs).eval()
    g = torch.Generator().manual_seed(4)
    lulc = torch.randint(0, 10, (2, 1, 64, 64), generator=g).float()  # [B, 1, H, W]: TerraTorch standardizes it
    random.seed(8)
    with torch.no_grad():
        expected = ref({"LULC": lulc.clone()})["DEM"]
    random.seed(8)
    got = ours({"LULC": lulc})["DEM"]
    assert got.shape == expected.shape == (2, 1, 64, 64)
    assert _rel(got, expected) <= REL


# ---------------------------------------------------------------------------------------------- TiM
@pytest.fixture(scope="class")
def tim_models():
    mp = pytest.MonkeyPatch()
    _offline_fake_hub(mp)
    backbones, _ = _terratorch_registry()
    built = {}

    def get(merge):
        if merge not in built:
            built.clear()
            gc.collect()
            kwargs = dict(modalities=["S2L2A", "S1GRD"], pretrained=True, merge_method=merge)
            built[merge] = (build_model("terramind_v1_tiny_tim", **kwargs),
                            backbones.build("terramind_v1_tiny_tim", **kwargs).eval())
        return built[merge]
    yield get
    built.clear()
    mp.undo()
    gc.collect()


def _tim_inputs():
    g = torch.Generator().manual_seed(2)
    return {"S2L2A": torch.randn(2, 12, 224, 224, generator=g), "S1GRD": torch.randn(2, 2, 224, 224, generator=g)}


@pytest.mark.slow
class TestTiM:
    @pytest.mark.parametrize("merge,temperature", [("mean", 1.0), ("mean", 0.0), ("dict", 1.0), (None, 1.0)])
    def test_layers_match(self, tim_models, merge, temperature):
        ours, ref = tim_models(merge)
        ours.tim_temps = ref.tim_temps = temperature
        inputs = _tim_inputs()
        random.seed(21)
        got = ours(dict(inputs))
        random.seed(21)
        with torch.no_grad():
            expected = ref(dict(inputs))
        assert len(got) == len(expected) == 12
        for layer, (a, b) in enumerate(zip(got, expected)):
            if merge == "dict":
                assert list(a) == list(b) == ["S2L2A", "S1GRD"]  # TiM tokens are left out, as in TerraTorch
                a, b = torch.cat(list(a.values()), 1), torch.cat(list(b.values()), 1)
            assert a.shape == b.shape
            assert _rel(a, b) <= 1e-5, f"layer {layer}"
