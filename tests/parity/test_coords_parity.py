"""Coordinates parity with TerraTorch 1.1.1: tokens, backbone, TiM and generation with (lon, lat).

Both sides read the fake hub (``scripts/fake_hub_coords.py`` adds the official-format coords tokenizer and the
coords embeddings to the tiny checkpoint), with ``pretrained=True`` through the real hub code, and with
``pretrained=False`` (TerraTorch's blank WordPiece; our weights copied from TerraTorch's random ones).
"""
from __future__ import annotations

import gc
import math
import random
import warnings

import pytest
import torch

pytest.importorskip("terratorch")
pytest.importorskip("tokenizers")

from terramind_backend.models import build_model  # noqa: E402
from terramind_backend.models.coords import build_coords_tokenizer  # noqa: E402

TOL = 1e-5
COORDS = torch.tensor([[7.1, 46.3], [-122.41, 37.77], [0.125, -0.1], [179.9, -89.99], [-0.12, 0.37],
                       [151.2, -33.87], [-58.38, -34.6], [0.0, 0.0]])


@pytest.fixture(scope="module")
def hub():
    from huggingface_hub import constants

    from tests.conftest import FAKE_HUB

    if not (FAKE_HUB / ".coords-complete").exists():
        pytest.fail(f"{FAKE_HUB} has no Coordinates: run scripts/fake_hub.sh")
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_CACHE", str(FAKE_HUB))
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setattr(constants, "HF_HUB_CACHE", str(FAKE_HUB))
    mp.setattr(constants, "HF_HUB_OFFLINE", True)
    previous = torch.get_float32_matmul_precision()
    yield FAKE_HUB
    torch.set_float32_matmul_precision(previous)
    mp.undo()
    gc.collect()


def _registries():
    from terratorch.registry import BACKBONE_REGISTRY, FULL_MODEL_REGISTRY

    torch.set_float32_matmul_precision("highest")  # importing TerraTorch switched it to "medium"
    return BACKBONE_REGISTRY, FULL_MODEL_REGISTRY


def _rel(a, b) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12))


def _compare_layers(got, expected):
    assert len(got) == len(expected)
    for layer, (a, b) in enumerate(zip(got, expected)):
        if isinstance(b, dict):
            assert list(a) == list(b)
            a, b = torch.cat(list(a.values()), 1), torch.cat(list(b.values()), 1)
        assert a.shape == b.shape, f"layer {layer}: {tuple(a.shape)} != {tuple(b.shape)}"
        assert _rel(a, b) <= TOL, f"layer {layer}: {_rel(a, b):.2e}"


def _s2(batch=2, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 12, size, size, generator=g)


def _same_sign(coords):  # the blank tokenizer splits a minus sign into its own piece: keep one sign per batch
    return coords[(coords >= 0).all(dim=1)]


# ---------------------------------------------------------------------------------------------- tokens
@pytest.mark.parametrize("pretrained", [True, False])
def test_tokens_and_decoding_identical(hub, pretrained):
    from terratorch.models.backbones.terramind.tokenizer.tokenizer_register import terramind_v1_coords_tokenizer

    theirs = terramind_v1_coords_tokenizer(pretrained=pretrained)
    ours = build_coords_tokenizer(pretrained=pretrained)
    coords = COORDS if pretrained else _same_sign(COORDS)
    grid = torch.cartesian_prod(torch.arange(-180, 180.01, 7.375), torch.arange(-90, 90.01, 3.125))
    for batch in (coords, coords.double(), grid if pretrained else _same_sign(grid)[:50]):
        t, o = theirs.encode(batch), ours.encode(batch)
        assert set(o) == set(t)
        for key in t:
            assert torch.equal(o[key], t[key]), key
    if pretrained:
        assert t["tensor"].shape[1] == 3  # lat, lon, [EOS]
    # decoding: real coordinate tokens, sentinels and padding, ids outside the vocabulary
    g = torch.Generator().manual_seed(1)
    ids = torch.cat([ours.tokenize(coords)[:, :2], torch.tensor([[5, 0], [0, 0]]),
                     torch.randint(0, 30000, (6, 2), generator=g)])
    with warnings.catch_warnings(record=True) as ours_warned:
        warnings.simplefilter("always")
        got = ours.decode(ids)
    with warnings.catch_warnings(record=True) as theirs_warned:
        warnings.simplefilter("always")
        expected = theirs.decode_text({"coords": {"tensor": ids}})
    assert len(got) == len(expected) == len(ids)
    for a, b in zip(got, expected):
        assert all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b)), (a, b)
    assert len(ours_warned) == len(theirs_warned) >= 3


# ---------------------------------------------------------------------------------------------- backbone
@pytest.mark.parametrize("pretrained", [True, False])
def test_backbone_with_coordinates(hub, pretrained):
    backbones, _ = _registries()
    kwargs = dict(modalities=["S2L2A", "Coordinates"], pretrained=pretrained, merge_method=None)
    theirs = backbones.build("terramind_v1_tiny", **kwargs).eval()
    ours = build_model("terramind_v1_tiny", **kwargs)
    if not pretrained:
        ours.load_state_dict(theirs.state_dict())
    coords = COORDS[:2] if pretrained else _same_sign(COORDS)[:2]
    inputs = {"S2L2A": _s2(), "Coordinates": coords}
    for method in ("mean", "dict", None):
        theirs.merge_method = ours.merge_method = method
        with torch.no_grad():
            expected = theirs(dict(inputs))
        _compare_layers(ours(dict(inputs)), expected)
    with pytest.warns(UserWarning, match="Unknown input modality"):  # whole batch dicts: extra keys ignored
        got = ours({**inputs, "mask": torch.zeros(2, 64, 64)})
    _compare_layers(got, expected)


# ---------------------------------------------------------------------------------------------- TiM
def _tim_pair(pretrained, **kwargs):
    backbones, _ = _registries()
    theirs = backbones.build("terramind_v1_tiny_tim", pretrained=pretrained, **kwargs).eval()
    ours = build_model("terramind_v1_tiny_tim", pretrained=pretrained, **kwargs)
    own = ours.state_dict()
    # the fake checkpoint has no tok_dem@224 *encoder* embedding (the real one has): both sides random, share theirs
    shared = {k: v for k, v in theirs.state_dict().items() if k in own
              and (not pretrained or k.startswith("encoder_embeddings.tok_dem@224."))}
    ours.load_state_dict({**own, **shared}, strict=True)
    return theirs, ours


def _run_tim(theirs, ours, inputs, python_seed):
    random.seed(python_seed)
    got = ours(dict(inputs))
    random.seed(python_seed)
    with torch.no_grad():
        expected = theirs(dict(inputs))
    _compare_layers(got, expected)
    return got


@pytest.mark.slow
@pytest.mark.parametrize("pretrained", [True, False])
def test_tim_imagines_coordinates_and_dem(hub, pretrained):
    theirs, ours = _tim_pair(pretrained, modalities=["S2L2A"], tim_modalities=["coords", "DEM"], merge_method=None)
    for temperature, seed in ((1.0, 3), (0.0, 4), (1.0, 5)):
        ours.tim_temps = theirs.tim_temps = temperature
        got = _run_tim(theirs, ours, {"S2L2A": _s2()}, seed)
        assert got[-1].shape[1] > 16 + 16  # S2L2A and DEM tokens plus the imagined coordinate tokens
    theirs.merge_method = ours.merge_method = "mean"
    _run_tim(theirs, ours, {"S2L2A": _s2()}, 6)
    del theirs, ours
    gc.collect()


@pytest.mark.slow
def test_tim_with_coordinates_input(hub):
    theirs, ours = _tim_pair(True, modalities=["S2L2A", "location"], tim_modalities=["LULC"], merge_method="dict")
    _run_tim(theirs, ours, {"S2L2A": _s2(), "location": COORDS[:2]}, 7)


# ---------------------------------------------------------------------------------------------- generation
def _capture_coords(ref):
    """TerraTorch returns decoded lists; keep the generated ids too (the sampler's result dict)."""
    captured = {}
    original = ref.sampler.generate

    def generate(*args, **kwargs):
        out = original(*args, **kwargs)
        captured.update({k: v["tensor"].clone() for k, v in out.items()})
        return out
    ref.sampler.generate = generate
    return captured


def _generate_pair(pretrained, **kwargs):
    _, full = _registries()
    theirs = full.build("terramind_v1_tiny_generate", pretrained=pretrained, **kwargs).eval()
    ours = build_model("terramind_v1_tiny_generate", pretrained=pretrained, **kwargs)
    if not pretrained:
        own = ours.state_dict()
        ours.load_state_dict({k: v for k, v in theirs.state_dict().items() if k in own}, strict=True)
    return theirs, ours


@pytest.mark.slow
@pytest.mark.parametrize("pretrained", [True, False])
def test_greedy_coordinates_generation_identical(hub, pretrained):
    theirs, ours = _generate_pair(pretrained, modalities=["S2L2A"], output_modalities=["coords"], temps=0.0,
                                  standardize=True)
    captured = _capture_coords(theirs)
    for seed in range(3):
        x = 1000 + 3000 * _s2(3, 64, seed).abs()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            random.seed(seed)
            with torch.no_grad():
                expected = theirs({"S2L2A": x.clone()})["coords"]
            random.seed(seed)
            tokens, info = ours.generate_tokens({"S2L2A": x})
            got = ours.decode_outputs(tokens, info)["coords"]
        assert torch.equal(tokens["coords"], captured["coords"].long())
        assert str(got) == str(expected)


@pytest.mark.slow
def test_sampled_generation_with_coordinates_in_and_out(hub):
    """Coordinates as an input of LULC, and generated after LULC with nucleus sampling (same Python seed)."""
    theirs, ours = _generate_pair(True, modalities=["S2L2A", "coords"], output_modalities=["LULC"], standardize=True)
    captured = _capture_coords(theirs)
    inputs = {"S2L2A": 1000 + 3000 * _s2(2, 64).abs(), "coords": COORDS[:2]}
    random.seed(11)
    with torch.no_grad():
        expected = theirs({k: v.clone() for k, v in inputs.items()})
    random.seed(11)
    tokens, info = ours.generate_tokens(dict(inputs))
    assert torch.equal(tokens["LULC"].flatten(1), captured["tok_lulc@224"].long())
    assert _rel(ours.decode_outputs(tokens, info)["LULC"], expected["LULC"]) <= 1e-4

    theirs, ours = _generate_pair(True, modalities=["S2L2A"], output_modalities=["LULC", "coords"], standardize=True)
    captured = _capture_coords(theirs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        random.seed(12)
        with torch.no_grad():
            expected = theirs({"S2L2A": inputs["S2L2A"].clone()})
        random.seed(12)
        tokens, info = ours.generate_tokens({"S2L2A": inputs["S2L2A"]})
        got = ours.decode_outputs(tokens, info)
    assert torch.equal(tokens["coords"], captured["coords"].long())
    assert torch.equal(tokens["LULC"].flatten(1), captured["tok_lulc@224"].long())
    assert str(got["coords"]) == str(expected["coords"])
