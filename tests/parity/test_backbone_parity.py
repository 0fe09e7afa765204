"""Backbone parity: our ``build_backbone`` vs TerraTorch 1.1.1's ``terramind_v1_<size>`` on the same weights.

Both load the random official-layout checkpoint of ``.cache/fake-hub`` through their real
``pretrained=True`` code paths (HF cache, offline), get the same inputs, and every layer's output must
agree within 1e-5 of its scale (fp32). State-dict keys must be identical for the same arguments.

Note on precision: importing TerraTorch sets ``torch.set_float32_matmul_precision("medium")``
globally (its clay_v15 module), which lets CPU matmuls run in bf16 on AMX machines (errors ~1e-2).
The fixture below restores "highest" so that both sides compute in true fp32.

Coordinates: (lon, lat) inputs through the coords tokenizer are compared in test_coords_parity.py; here
TerraTorch's ``TerraMindViT`` built without tokenizers embeds Coordinates token ids directly, as ours does for
integer ids.
"""
from __future__ import annotations


import pytest
import torch


from tests.conftest import fake_hub, fake_hub_small  # noqa: E402,F401  (fixtures of tests/conftest.py)
from terratorch.registry import BACKBONE_REGISTRY  # noqa: E402

from terramind_backend.models.vit import TerraMindViT as OurViT, build_backbone  # noqa: E402

RAW = ["S2L1C", "S2L2A", "RGB", "S1GRD", "S1RTC", "DEM"]
TOL = 1e-5


def _hf_constants(monkeypatch, folder):
    """huggingface_hub reads HF_HUB_CACHE / HF_HUB_OFFLINE once at import (TerraTorch relies on those)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(folder))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return folder


@pytest.fixture
def hub(fake_hub, monkeypatch):
    return _hf_constants(monkeypatch, fake_hub)


@pytest.fixture
def hub_small(fake_hub_small, monkeypatch):
    return _hf_constants(monkeypatch, fake_hub_small)


pytestmark = pytest.mark.usefixtures("true_fp32")   # tests/parity/conftest.py


def _pair(size="tiny", pretrained=True, **kwargs):
    theirs = BACKBONE_REGISTRY.build(f"terramind_v1_{size}", pretrained=pretrained, **kwargs).eval()
    ours = build_backbone(size, pretrained=pretrained, **kwargs)
    return theirs, ours


def _inputs(model: OurViT, names, batch=1, size=224, seed=0):
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name in names:
        key = model.mod_name_mapping[name]
        if key == "tok_lulc@224":
            out[name] = torch.randint(0, 10, (batch, size, size), generator=gen)
        else:
            channels = model.encoder_embeddings[key].in_channels if hasattr(model.encoder_embeddings[key], "in_channels") else 1
            out[name] = torch.randn(batch, channels, size, size, generator=gen)
    return out


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def _compare(theirs_out, ours_out):
    assert len(ours_out) == len(theirs_out)
    for layer, (t, o) in enumerate(zip(theirs_out, ours_out)):
        if isinstance(t, dict):
            assert list(o) == list(t), f"layer {layer}: dict keys {list(o)} != {list(t)}"
            for name in t:
                assert o[name].shape == t[name].shape
                assert _rel(o[name], t[name]) <= TOL, f"layer {layer} {name}: {_rel(o[name], t[name]):.2e}"
        else:
            assert o.shape == t.shape, f"layer {layer}: {tuple(o.shape)} != {tuple(t.shape)}"
            assert _rel(o, t) <= TOL, f"layer {layer}: max |diff| {_rel(o, t):.2e} relative"


def _run_both(theirs, ours, inputs):
    with torch.no_grad():
        expected = theirs(dict(inputs))
        got = ours(dict(inputs))
    _compare(expected, got)
    return got


def _same_keys(theirs, ours):
    t, o = list(theirs.state_dict()), list(ours.state_dict())
    # tokenizer internals may register submodules in another order; everything else in the same order
    assert [k for k in o if not k.startswith("tokenizer.")] == [k for k in t if not k.startswith("tokenizer.")]
    assert set(o) == set(t)


def test_single_modality_all_layers(hub):
    theirs, ours = _pair(modalities=["S2L2A"])
    _same_keys(theirs, ours)
    got = _run_both(theirs, ours, _inputs(ours, ["S2L2A"], batch=2))
    assert len(got) == 12 and got[-1].shape == (2, 196, 192)
    # a bare tensor and keyword arguments mean the same as the dict
    x = _inputs(ours, ["S2L2A"], batch=1, seed=1)["S2L2A"]
    with torch.no_grad():
        _compare(theirs(x), ours(x))
        _compare(theirs(S2L2A=x), ours(S2L2A=x))


def test_multi_modality_every_merge_method(hub):
    names = ["S2L1C", "RGB", "S1GRD", "S1RTC", "DEM"]
    theirs, ours = _pair(modalities=names)
    _same_keys(theirs, ours)
    inputs = _inputs(ours, names)
    for method in ("mean", "max", "dict", None):
        theirs.merge_method = ours.merge_method = method
        _run_both(theirs, ours, inputs)
    # a subset of the configured modalities, in another order
    theirs.merge_method = ours.merge_method = "mean"
    _run_both(theirs, ours, {k: inputs[k] for k in ["DEM", "S2L1C"]})


def test_concat_with_and_without_missing_modalities(hub):
    theirs, ours = _pair(modalities=["S2L2A", "S1GRD", "DEM"], merge_method="concat")
    _same_keys(theirs, ours)
    assert ours.out_channels == theirs.out_channels
    # TerraTorch leaves missing_mod_token uninitialised: give both the same value
    ours.missing_mod_token.data.copy_(theirs.missing_mod_token.data.normal_())
    inputs = _inputs(ours, ["S2L2A", "S1GRD", "DEM"])
    got = _run_both(theirs, ours, inputs)
    assert got[0].shape == (1, 196, 3 * 192)
    _run_both(theirs, ours, {"S1GRD": inputs["S1GRD"]})


def test_tokenized_lulc_and_ndvi_inputs(hub):
    names = ["S2L2A", "LULC", "NDVI"]
    theirs, ours = _pair(modalities=names, merge_method="dict")
    _same_keys(theirs, ours)
    inputs = _inputs(ours, names)
    _run_both(theirs, ours, inputs)
    theirs.merge_method = ours.merge_method = "mean"
    _run_both(theirs, ours, {"LULC": inputs["LULC"][:, None], "NDVI": inputs["NDVI"]})  # [B, 1, H, W] classes too


def test_new_dict_modality(hub):
    mods = ["S2L2A", {"PLANET": 4}]
    theirs, ours = _pair(modalities=mods)
    _same_keys(theirs, ours)
    # the new embedding is freshly initialised on both sides: give ours TerraTorch's values
    ours.encoder_embeddings["PLANET"].load_state_dict(theirs.encoder_embeddings["PLANET"].state_dict())
    gen = torch.Generator().manual_seed(3)
    inputs = {"S2L2A": torch.randn(1, 12, 224, 224, generator=gen), "PLANET": torch.randn(1, 4, 224, 224, generator=gen)}
    for method in ("mean", None):
        theirs.merge_method = ours.merge_method = method
        _run_both(theirs, ours, inputs)


def test_bands_subset_and_reordering(hub):
    bands = {"S2L2A": ["RED", "GREEN", "BLUE", "NIR_NARROW", "SWIR_1"], "S1GRD": ["VH", "VV"]}
    theirs, ours = _pair(modalities=["S2L2A", "S1GRD"], bands=bands)
    _same_keys(theirs, ours)
    assert ours.encoder_embeddings["untok_sen2l2a@224"].proj.weight.shape == (192, 5 * 256)
    _run_both(theirs, ours, {"S2L2A": torch.randn(1, 5, 224, 224), "S1GRD": torch.randn(1, 2, 224, 224)})


def test_bands_unknown_band_keeps_pretrained_columns(hub):
    bands = {"S2L1C": ["BLUE", "PANCHROMATIC", "RED", "THERMAL_1"]}
    theirs, ours = _pair(modalities=["S2L1C"], bands=bands)
    t = theirs.encoder_embeddings["untok_sen2l1c@224"].proj.weight.detach().reshape(192, 256, 4)
    o = ours.encoder_embeddings["untok_sen2l1c@224"].proj.weight.detach().reshape(192, 256, 4)
    assert torch.equal(o[..., [0, 2]], t[..., [0, 2]])  # known bands: the pretrained columns
    # unknown bands are random on both sides; with TerraTorch's values the outputs agree
    ours.encoder_embeddings["untok_sen2l1c@224"].proj.weight.data.copy_(t.reshape(192, -1))
    _run_both(theirs, ours, {"S2L1C": torch.randn(1, 4, 224, 224)})


def test_other_image_sizes(hub):
    # img_size=256: the checkpoint's 14x14 position grids are skipped, fresh 16x16 sin-cos kept
    theirs, ours = _pair(modalities=["S2L2A", "S1RTC"], img_size=256)
    _same_keys(theirs, ours)
    _run_both(theirs, ours, _inputs(ours, ["S2L2A", "S1RTC"], size=256))
    # a 224 model on 320x256 inputs: bicubic interpolation of the position grid
    theirs, ours = _pair(modalities=["S2L2A"])
    gen = torch.Generator().manual_seed(5)
    got = _run_both(theirs, ours, {"S2L2A": torch.randn(1, 12, 320, 256, generator=gen)})
    assert got[-1].shape == (1, 320, 192)


def test_coordinates_token_ids_path(hub):
    """S2L2A + Coordinates token ids through TerraTorch's TerraMindViT (built without tokenizers) and ours
    (integer ids skip the coords tokenizer; (lon, lat) floats: tests/parity/test_coords_parity.py)."""
    from functools import partial

    from terratorch.models.backbones.terramind.model.terramind_register import checkpoint_filter_fn
    from terratorch.models.backbones.terramind.model.terramind_vit import TerraMindViT
    from terratorch.models.backbones.terramind.model.tm_utils import LayerNorm

    from terramind_backend import hub

    theirs = TerraMindViT(modalities=["S2L2A", "Coordinates"], dim=192, encoder_depth=12, num_heads=3,
                          norm_layer=partial(LayerNorm, eps=1e-6, bias=False), tokenizer_dict=None).eval()
    theirs.load_state_dict(checkpoint_filter_fn(hub.official_state_dict("terramind_v1_tiny"), theirs), strict=True)
    ours = build_backbone("tiny", modalities=["S2L2A", "Coordinates"], pretrained=True)
    assert "coords" in ours.tokenizer
    assert [k for k in ours.state_dict()] == [k for k in theirs.state_dict()]
    gen = torch.Generator().manual_seed(7)
    inputs = {"S2L2A": torch.randn(2, 12, 224, 224, generator=gen),
              "Coordinates": torch.randint(7, 30000, (2, 3), generator=gen)}
    for method in ("mean", "dict", None):
        theirs.merge_method = ours.merge_method = method
        _run_both(theirs, ours, inputs)


def test_state_dict_keys_without_weights():
    for kwargs in (dict(modalities=RAW), dict(modalities=["S2L2A"], merge_method="concat"),
                   dict(modalities=["S1GRD", {"X": 5}]), dict(modalities=None), dict(modalities=["rgb"], img_size=128)):
        theirs, ours = _pair(pretrained=False, **kwargs)
        _same_keys(theirs, ours)
        for key, value in theirs.state_dict().items():
            assert ours.state_dict()[key].shape == value.shape, key


@pytest.mark.slow
def test_small_size(hub_small):
    theirs, ours = _pair("small", modalities=["S2L2A", "S1GRD"])
    _same_keys(theirs, ours)
    got = _run_both(theirs, ours, _inputs(ours, ["S2L2A", "S1GRD"]))
    assert got[-1].shape == (1, 196, 384)


def test_encoder_decoder_matches_terratorch_sampler(hub):
    """``encdec.TerraMind`` vs TerraTorch's ``TerraMind`` + ``GenerationSampler`` steps on the official file:
    masked encoder inputs (different valid counts per row), image-token logits, a causal sequence pass."""
    from functools import partial

    from terratorch.models.backbones.terramind.model.generate import GenerationSampler
    from terratorch.models.backbones.terramind.model.modality_info import MODALITY_INFO
    from terratorch.models.backbones.terramind.model.terramind import TerraMind as TheirTerraMind
    from terratorch.models.backbones.terramind.model.terramind_register import checkpoint_filter_fn
    from terratorch.models.backbones.terramind.model.tm_utils import LayerNorm

    from terramind_backend import hub as our_hub
    from terramind_backend.models.encdec import TerraMind, transformer_config
    from terramind_backend.models.loading import filter_backbone_state

    enc_keys, dec_keys = ["untok_sen2l2a@224", "tok_lulc@224"], ["tok_lulc@224", "tok_dem@224", "coords"]
    info = MODALITY_INFO
    theirs = TheirTerraMind(
        encoder_embeddings={k: info[k]["encoder_embedding"](image_size=224, dim_tokens=192, **info[k]) for k in enc_keys},
        decoder_embeddings={k: info[k]["decoder_embedding"](image_size=224, dim_tokens=192, **info[k]) for k in dec_keys},
        modality_info=info, dim=192, encoder_depth=12, decoder_depth=4, num_heads=3,
        norm_layer=partial(LayerNorm, eps=1e-6, bias=False)).eval()
    state = our_hub.official_state_dict("terramind_v1_tiny")
    theirs.load_state_dict(checkpoint_filter_fn(state, theirs), strict=True)
    ours = TerraMind(enc_keys, dec_keys, **transformer_config("tiny")).eval()
    clean, report = filter_backbone_state(state, ours)
    ours.load_state_dict(clean, strict=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert all(k.startswith("decoder_embeddings.coords.") for k in report.missing)  # not in the fake file
    ours.decoder_embeddings["coords"].load_state_dict(theirs.decoder_embeddings["coords"].state_dict())
    sampler = GenerationSampler(theirs)

    gen = torch.Generator().manual_seed(11)
    B = 2
    image = torch.randn(B, 12, 224, 224, generator=gen)
    lulc = torch.randint(0, 4375, (B, 196), generator=gen)
    masked = torch.zeros(B, 196, dtype=torch.bool)
    masked[0, 50:] = True   # row 0: 50 LULC tokens are inputs, row 1: 196
    mod = lambda t, m: {"tensor": t, "input_mask": m, "target_mask": ~m,  # noqa: E731
                        "decoder_attention_mask": torch.zeros_like(m)}
    theirs_in = {"untok_sen2l2a@224": mod(image, torch.zeros(B, 196, dtype=torch.bool)), "tok_lulc@224": mod(lulc, masked)}
    with torch.no_grad():
        enc_dict = {k: theirs.encoder_embeddings[k](dict(d)) for k, d in theirs_in.items()}
        tokens, emb, mask, _ = sampler.forward_mask_encoder_generation(enc_dict)
        x = theirs.forward_encoder(tokens + emb, mask)
        context = theirs.decoder_proj_context(x) + emb
        ctx = ours.encode({"untok_sen2l2a@224": image, "tok_lulc@224": {"tensor": lulc, "input_mask": masked}})
        assert torch.equal(ctx.mask, mask)
        assert _rel(ctx.context, context) <= TOL

        # image target: mask tokens + position/modality embedding at a random subset of positions
        target = {"tensor": torch.zeros(B, 196, dtype=torch.long), "target_mask": torch.zeros(B, 196, dtype=torch.bool)}
        dec = theirs.decoder_embeddings["tok_dem@224"].forward_embed(dict(target))
        positions = torch.randperm(196, generator=gen)[:60].repeat(B, 1)
        y = torch.gather(torch.zeros_like(dec["x"]) + theirs.mask_token + dec["emb"], 1,
                         positions[..., None].expand(-1, -1, 192))
        expected = theirs.decoder_embeddings["tok_dem@224"].forward_logits(theirs.forward_decoder(y, context, mask, None))
        got = ours.decode_image_logits("tok_dem@224", ctx, positions=positions, num_tokens=196)
        assert got.shape == (B, 60, 15360) and _rel(got, expected) <= TOL
        # all positions in order
        full = ours.decode_image_logits("tok_lulc@224", ctx, num_tokens=196)
        y = theirs.mask_token + theirs.decoder_embeddings["tok_lulc@224"].forward_embed(dict(target))["emb"]
        expected = theirs.decoder_embeddings["tok_lulc@224"].forward_logits(theirs.forward_decoder(y, context, mask, None))
        assert _rel(full, expected) <= TOL

        # sequence target (coords): token embeddings + 1-D positions, causal self-attention
        ids = torch.randint(7, 30000, (B, 4), generator=gen)
        seq = theirs.decoder_embeddings["coords"].forward_embed(
            {"tensor": ids, "target_mask": torch.zeros(B, 4, dtype=torch.bool)})
        causal = torch.ones(4, 4, dtype=torch.bool).triu(1).expand(B, 4, 4)
        expected = theirs.decoder_embeddings["coords"].forward_logits(
            theirs.forward_decoder(seq["x"] + seq["emb"], context, mask, causal))
        got = ours.decode_sequence_logits("coords", ids, ctx)
        assert got.shape == (B, 4, 30000) and _rel(got, expected) <= TOL
