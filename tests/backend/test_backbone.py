"""Our TerraMind backbone on its own: names, shapes, errors, loading (parity with TerraTorch: tests/parity)."""
from __future__ import annotations

import math

import pytest
import torch

from tests.conftest import FAKE_HUB, empty_hub, fake_hub  # noqa: F401  (fixtures)
from terramind_backend import build_model, hub
from terramind_backend.models import loading
from terramind_backend.models.encdec import TerraMind, transformer_config
from terramind_backend.models.modalities import (MODALITY_INFO, PRETRAINED_BANDS, UnknownModalityError, modality_id,
                                                 resolve_input_modality, resolve_output_modality)
from terramind_backend.models.posemb import resize_grid, sincos_2d
from terramind_backend.models.vit import build_backbone

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_s2():
    """Random-weight tiny backbone (no file needed)."""
    return build_backbone("tiny", modalities=["S2L2A", "S1GRD"], merge_method=None)


@pytest.mark.parametrize("name, key", [
    ("S2L2A", "untok_sen2l2a@224"), ("s2l2a", "untok_sen2l2a@224"), ("S2L1C_L8", "untok_sen2l1c@224"),
    ("S2RGB", "untok_sen2rgb@224"), ("RGB", "untok_sen2rgb@224"), ("S1GRD", "untok_sen1grd@224"),
    ("sen1rtc", "untok_sen1rtc@224"), ("DEM", "untok_dem@224"), ("LULC", "tok_lulc@224"), ("NDVI", "tok_ndvi@224"),
    ("Coordinates", "coords"), ("location", "coords"), ("tok_sen2l2a@224", "tok_sen2l2a@224"),
])
def test_input_names_resolve_as_terratorch(name, key):
    assert resolve_input_modality(name) == key


@pytest.mark.parametrize("name", ["S2-L2A", "sentinel2_l2a", "S1", "caption", "Landsat"])
def test_unknown_input_names_raise(name):
    with pytest.raises(UnknownModalityError, match="TerraMind 1.0 knows"):
        resolve_input_modality(name)


def test_output_names_follow_the_output_rules():
    assert resolve_output_modality("S2L1C") == "tok_sen2l2a@224"  # TerraTorch's quirk, kept
    assert resolve_output_modality("S1") == "tok_sen1grd@224"
    assert resolve_output_modality("s1rtc") == "tok_sen1rtc@224"
    with pytest.raises(UnknownModalityError):
        resolve_output_modality("RGB")


def test_modality_ids_are_the_hashes_of_the_keys():
    assert modality_id("untok_sen2l2a@224") == 421 and modality_id("tok_lulc@224") == 24055
    assert MODALITY_INFO["coords"].id == 30432


def test_sincos_puts_the_row_first():
    d = 8
    pos = sincos_2d(3, 3, d)[0]  # token 5 = row 1, column 2
    w = 1.0 / 10000 ** (torch.arange(2) / 2)
    expected = torch.cat([torch.sin(1 * w), torch.cos(1 * w), torch.sin(2 * w), torch.cos(2 * w)])
    assert torch.allclose(pos[5], expected)
    assert resize_grid(sincos_2d(14, 14, d), 16, 20).shape == (1, 320, d)


def test_shapes_per_merge_method():
    x = {"S2L2A": torch.randn(2, 12, 64, 64), "S1GRD": torch.randn(2, 2, 64, 64)}
    model = build_backbone("tiny", modalities=["S2L2A", "S1GRD", "DEM"], merge_method="concat")
    with torch.no_grad():
        assert model(x)[0].shape == (2, 16, 3 * 192)  # one missing modality filled in
        for method, shape in (("mean", (2, 16, 192)), ("max", (2, 16, 192)), (None, (2, 32, 192))):
            model.merge_method = method
            out = model(x)
            assert len(out) == 12 and all(o.shape == shape for o in out)
        model.merge_method = "dict"
        out = model(x)
        assert list(out[-1]) == ["S2L2A", "S1GRD"] and out[-1]["S1GRD"].shape == (2, 16, 192)
    assert model.out_channels == [576] * 12


def test_mean_merge_is_the_mean_of_the_modality_tokens(tiny_s2):
    x = {"S2L2A": torch.randn(1, 12, 32, 32), "S1GRD": torch.randn(1, 2, 32, 32)}
    with torch.no_grad():
        tokens = tiny_s2(x)
        tiny_s2.merge_method = "mean"
        try:
            merged = tiny_s2(x)
        finally:
            tiny_s2.merge_method = None
    for t, m in zip(tokens, merged):
        assert torch.allclose(m, (t[:, :4] + t[:, 4:]) / 2, atol=1e-6)


def test_input_forms_are_equivalent(tiny_s2):
    x = torch.randn(1, 12, 32, 32)
    with torch.no_grad():
        a, b, c = tiny_s2(x), tiny_s2({"S2L2A": x}), tiny_s2(S2L2A=x)
    assert all(torch.equal(p, q) and torch.equal(p, r) for p, q, r in zip(a, b, c))
    inputs = {"S2L2A": x}
    with torch.no_grad():
        tiny_s2(inputs, S1GRD=torch.randn(1, 2, 32, 32))
    assert list(inputs) == ["S2L2A"]  # the caller's dict is not modified


def test_only_the_last_layer_is_normalised(tiny_s2):
    with torch.no_grad():
        out = tiny_s2(torch.randn(1, 12, 32, 32))
    last = out[-1]
    assert torch.allclose(last.mean(-1), torch.zeros(1), atol=1e-4)  # LayerNorm without bias
    assert not torch.allclose(out[-2].mean(-1), torch.zeros(1), atol=1e-2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(modalities=["S2-L2A"]), "Unknown input modality 'S2-L2A'"),
    (dict(modalities=["S2L2A"], img_size=200), "multiple of 16"),
    (dict(modalities=["S2L2A"], merge_method="sum"), "merge_method"),
    (dict(modalities=["S2L2A", "s2l2a"]), "both resolve"),
    (dict(modalities=[{"NEW": 0}]), "positive int"),
    (dict(modalities="S2L2A"), "list"),
    (dict(modalities=["S2L2A"], bands={"S1GRD": ["VV"]}), "not one of this model's modalities"),
])
def test_bad_arguments_raise_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_backbone("tiny", **kwargs)


def test_unexpected_keyword_and_size():
    with pytest.raises(TypeError, match="unexpected keyword argument 'depth'"):
        build_backbone("tiny", depth=3)
    with pytest.raises(ValueError, match="Unknown TerraMind model"):
        build_model("terramind_v1_huge")


def test_bad_inputs_raise_clear_errors(tiny_s2):
    with pytest.raises(ValueError, match="Expected 12 channels, got 13"):
        tiny_s2(torch.randn(1, 13, 32, 32))
    with pytest.raises(ValueError, match="not a multiple of the patch size"):
        tiny_s2(torch.randn(1, 12, 40, 40))
    with pytest.raises(ValueError, match="No valid input"):
        with pytest.warns(UserWarning, match="Unknown input modality 'S1RTC'"):
            tiny_s2({"S1RTC": torch.randn(1, 2, 32, 32)})
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        tiny_s2(torch.randn(12, 32, 32))


def test_unknown_inputs_are_ignored_with_a_warning(tiny_s2):
    """TerraTorch's input semantics: whole batch dicts can be passed, other names are dropped with a warning."""
    x = torch.randn(1, 12, 32, 32)
    with pytest.warns(UserWarning, match="Unknown input modality 'mask'"):
        got = tiny_s2({"S2L2A": x, "mask": torch.zeros(1, 32, 32), "filename": "a.tif"})
    expected = tiny_s2(x)  # a single tensor is the first modality
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
    assert all(torch.equal(a, b) for a, b in zip(tiny_s2(S2L2A=x), expected))  # keyword input


def test_bands_for_tim_are_rejected():
    loading.reject_bands(None)
    with pytest.raises(NotImplementedError, match="bands cannot be adapted for TerraMind TiM"):
        loading.reject_bands({"S2L2A": ["RED"]})


def test_bands_reslice_the_patch_embedding():
    model = build_backbone("tiny", modalities=["S2L2A"])
    before = model.encoder_embeddings["untok_sen2l2a@224"].proj.weight.detach().reshape(192, 256, 12).clone()
    loading.select_band_weights(model, {"S2L2A": ["NIR_NARROW", "RED", "PANCHROMATIC"]}, PRETRAINED_BANDS)
    after = model.encoder_embeddings["untok_sen2l2a@224"].proj.weight.detach().reshape(192, 256, 3)
    assert torch.equal(after[..., 0], before[..., 8]) and torch.equal(after[..., 1], before[..., 3])
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32))[-1].shape == (1, 4, 192)


def test_pretrained_loads_the_checkpoint_offline(fake_hub):  # noqa: F811
    seen = []
    model = build_model("terramind_v1_tiny", modalities=["S1GRD"], pretrained=True,
                        download_progress=lambda *a: seen.append(a))
    state = hub.official_state_dict("terramind_v1_tiny")
    own = model.state_dict()
    assert torch.equal(own["encoder.3.mlp.fc1.weight"], state["encoder.3.mlp.fc1.weight"])
    assert torch.equal(own["encoder_embeddings.untok_sen1grd@224.proj.weight"],
                       state["encoder_embeddings.untok_sen1grd@224.proj.weight"])
    assert not any(k.startswith("decoder") for k in own)
    assert not model.training


def test_download_progress_reaches_the_hub(monkeypatch):
    calls = {}

    def fake_state(name, progress=None, token=None):
        calls["name"], calls["progress"] = name, progress
        return TerraMind(["untok_dem@224"], [], **transformer_config("tiny")).state_dict()

    monkeypatch.setattr(hub, "official_state_dict", fake_state)
    report = []
    build_backbone("tiny", modalities=["DEM"], pretrained=True, download_progress=report.append)
    assert calls == {"name": "terramind_v1_tiny", "progress": report.append}


def test_offline_without_cached_file_names_repo_and_file(empty_hub):  # noqa: F811
    with pytest.raises(hub.WeightsNotAvailable) as err:
        build_backbone("tiny", modalities=["S2L2A"], pretrained=True)
    message = str(err.value)
    assert "ibm-esa-geospatial/TerraMind-1.0-tiny" in message and "TerraMind_v1_tiny.pt" in message
    assert "huggingface-cli download" in message


def test_ckpt_path_round_trip_and_missing_file(tmp_path):
    model = build_backbone("tiny", modalities=["S2L2A"])
    path = tmp_path / "backbone.pt"
    torch.save(model.state_dict(), path)
    again = build_backbone("tiny", modalities=["S2L2A"], ckpt_path=str(path))
    x = torch.randn(1, 12, 32, 32)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model(x), again(x)))
    with pytest.raises(FileNotFoundError, match="Checkpoint not found"):
        build_backbone("tiny", modalities=["S2L2A"], ckpt_path=str(tmp_path / "nope.pt"))


def test_a_checkpoint_without_encoder_blocks_is_refused():
    model = build_backbone("tiny", modalities=["DEM"])
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("encoder.5.")}
    with pytest.raises(loading.CheckpointMismatch, match="transformer weights"):
        loading.filter_backbone_state(state, model)
    clean, report = loading.filter_backbone_state(model.state_dict(), model)
    assert not report.missing and not report.skipped and set(clean) == set(model.state_dict())


def test_generate_and_tim_filters_map_to_the_sampler():
    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sampler = torch.nn.Module()
            self.sampler.model = TerraMind(["untok_dem@224"], ["tok_lulc@224"], **transformer_config("tiny"))

    wrapper = Wrapper()
    state = wrapper.sampler.model.state_dict()
    clean, report = loading.filter_generate_state(state, wrapper)
    assert set(clean) == set(wrapper.state_dict()) and not report.missing
    with pytest.raises(loading.CheckpointMismatch, match="generator"):
        loading.filter_tim_state({k: v for k, v in state.items() if "decoder.1." not in k}, wrapper)


def test_encdec_masked_inputs_equal_dropping_them():
    torch.manual_seed(0)
    model = TerraMind(["untok_dem@224"], ["tok_lulc@224"], **transformer_config("tiny")).eval()
    x = torch.randn(1, 1, 64, 64)
    keep = torch.zeros(1, 16, dtype=torch.bool)
    keep[:, ::2] = True
    with torch.no_grad():
        full = model.encode({"untok_dem@224": {"tensor": x, "input_mask": ~keep}})
        enc = model.embed_inputs({"untok_dem@224": x})
        kept = enc._replace(tokens=enc.tokens[:, keep[0]], emb=enc.emb[:, keep[0]], mod_mask=enc.mod_mask[:, keep[0]])
        direct = model.encode(kept)
        assert full.context.shape == (1, 8, 192) and full.mask is None
        assert torch.allclose(full.context, direct.context, atol=1e-5)
        logits = model.decode_image_logits("tok_lulc@224", full, num_tokens=196)
        assert logits.shape == (1, 196, 4375)
        part = model.decode_image_logits("tok_lulc@224", full, positions=torch.tensor([[5, 0]]), num_tokens=196)
        assert part.shape == (1, 2, 4375)


def test_encdec_shares_mod_emb_and_ties_logits():
    model = TerraMind(["tok_lulc@224"], ["tok_lulc@224"], **transformer_config("tiny"))
    assert model.decoder_embeddings["tok_lulc@224"].mod_emb is model.encoder_embeddings["tok_lulc@224"].mod_emb
    dec = model.decoder_embeddings["tok_lulc@224"]
    assert dec.to_logits.weight is dec.token_emb.weight
    assert "decoder_embeddings.tok_lulc@224.to_logits.weight" in model.state_dict()


@pytest.mark.parametrize("size, dim, depth, params", [("tiny", 192, 12, 5_923_968), ("base", 768, 12, 87_313_920)])
def test_parameter_counts_match_the_fact_sheet(size, dim, depth, params):
    with torch.device("meta"):
        model = build_backbone(size, modalities=["S2L2A"])
    assert sum(p.numel() for p in model.parameters()) == params
    assert len(model.encoder) == depth and model.encoder_norm.weight.shape == (dim,)


def test_other_image_sizes_interpolate_positions():
    model = build_backbone("tiny", modalities=["S2L2A"], img_size=224)
    with torch.no_grad():
        out = model(torch.randn(1, 12, 48, 80))
    assert out[-1].shape == (1, 15, 192) and math.isfinite(out[-1].abs().max().item())


def test_bf16_precision_is_close_to_fp32_and_names_are_checked():
    exact = build_backbone("tiny", modalities=["S2L2A"])
    fast = build_backbone("tiny", modalities=["S2L2A"], precision="bf16")
    fast.load_state_dict(exact.state_dict())
    x = torch.randn(1, 12, 64, 64)
    with torch.no_grad():
        a, b = exact(x), fast(x)
    assert all(o.dtype == torch.float32 for o in b)
    worst = max(((p - q).abs().max() / q.abs().max()).item() for p, q in zip(b, a))
    assert 0 < worst < 0.05
    # the first bf16 forward kept the blocks' matmul weights in bf16 (same numbers as autocast's per-call cast)
    assert fast.encoder[0].attn.qkv.weight.dtype == torch.bfloat16
    assert fast.encoder[0].norm1.weight.dtype == torch.float32
    with torch.no_grad():
        assert all(torch.equal(p, q) for p, q in zip(fast(x), b))
    fast.precision = "fp32"
    with pytest.raises(ValueError, match="holds bf16 weights"):
        fast(x)
    with pytest.raises(ValueError, match="precision must be one of"):
        build_backbone("tiny", modalities=["S2L2A"], precision="fp16")


def test_float64_models_stay_float64():
    model = build_backbone("tiny", modalities=["DEM"]).double()
    with torch.no_grad():
        out = model(torch.randn(1, 1, 32, 32, dtype=torch.float64))
    assert all(o.dtype == torch.float64 for o in out)


def test_built_and_run_under_inference_mode():
    with torch.inference_mode():
        model = build_backbone("tiny", modalities=["DEM"])
        assert model(torch.randn(1, 1, 64, 48))[-1].shape == (1, 12, 192)


def _worst_relative(a, b):
    return max(((p - q).abs().max() / q.abs().max()).item() for p, q in zip(a, b))


def test_reference_arithmetic_is_opt_in_and_agrees_with_the_fast_path():
    """Reference arithmetic (TerraTorch's op order, used by segmentation) must stay a rounding-level
    change: same outputs as the fused default within 1e-5, and switching it off restores the default."""
    from terramind_backend.models import layers

    torch.manual_seed(0)
    model = build_backbone("tiny", modalities=["S2L2A", "S1GRD"])
    assert not model.reference_arithmetic  # embeddings/generation keep the fused kernels
    x = {"S2L2A": torch.randn(2, 12, 64, 64), "S1GRD": torch.randn(2, 2, 64, 64)}
    with torch.no_grad():
        fast = model(x)
        assert model.set_reference_arithmetic(True) is model and model.reference_arithmetic
        assert all(m.reference for m in model.modules() if isinstance(m, (layers.Linear, layers.Attention)))
        reference = model(x)
        model.set_reference_arithmetic(False)
        again = model(x)
    assert _worst_relative(reference, fast) < 1e-5
    assert all(torch.equal(p, q) for p, q in zip(again, fast))
    if layers._ONEDNN:  # otherwise both paths use F.linear and only attention differs
        assert any(not torch.equal(p, q) for p, q in zip(reference, fast)), "the flag changed nothing"


def test_reference_attention_keeps_mask_semantics():
    """Masked self-/cross-attention (generation's decoder), incl. a fully blocked row, in both modes."""
    from terramind_backend.models.layers import DecoderBlock, set_reference_arithmetic

    torch.manual_seed(0)
    block = DecoderBlock(192, 3).eval()
    y, context = torch.randn(2, 6, 192), torch.randn(2, 9, 192)
    sa_mask = torch.rand(2, 6, 6) > 0.6
    xa_mask = torch.rand(2, 1, 9) > 0.5
    xa_mask[1] = True  # nothing to attend to: the row averages instead of giving NaN
    with torch.no_grad():
        fast = block(y, context, sa_mask, xa_mask)
        reference = set_reference_arithmetic(block, True)(y, context, sa_mask, xa_mask)
    assert torch.isfinite(reference).all()
    torch.testing.assert_close(reference, fast, rtol=0, atol=1e-5 * fast.abs().max().item())
