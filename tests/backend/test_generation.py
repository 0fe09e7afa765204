"""Generation and TiM models of the backend: shapes, errors, seeding, multi-step and non-square decoding.

Runs on the fake hub (random official-layout weights), tiny model, 64-pixel tiles, 1-2 diffusion steps.
Agreement with TerraTorch is tested in tests/parity/test_generation_parity.py.
"""
from __future__ import annotations


import pytest
import torch

from terramind_backend.models import build_model
from terramind_backend.models.generation import TerraMindGeneration
from terramind_backend.models.loading import filter_generate_state, load_official
from terramind_backend.models.modalities import UnknownModalityError
from terramind_backend.models import sampling
from terramind_backend.models.sampling import linear_token_budget

NDVI_MEAN, NDVI_STD = 0.327, 0.322


def _s2(batch=2, height=64, width=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 1000 + torch.rand(batch, 12, height, width, generator=g) * 3000


@pytest.fixture(scope="module")
def hub():
    mp = pytest.MonkeyPatch()
    from tests.conftest import FAKE_HUB

    if not (FAKE_HUB / ".complete").exists():
        pytest.fail(f"{FAKE_HUB} missing: run scripts/fake_hub.sh (scripts/test.sh does it)")
    mp.setenv("HF_HUB_CACHE", str(FAKE_HUB))
    mp.setenv("HF_HUB_OFFLINE", "1")
    yield FAKE_HUB
    mp.undo()


@pytest.fixture(scope="module")
def generator(hub):
    return build_model("terramind_v1_tiny_generate", modalities=["S2L2A"], output_modalities=["LULC", "NDVI"],
                       pretrained=True, timesteps=1, standardize=True)


def _sibling(model: TerraMindGeneration, outputs, **kwargs) -> TerraMindGeneration:
    """Another generation model sharing ``model``'s loaded tokenizers (saves loading them again)."""
    tokenizers = dict(model.tokenizer.items())
    other = TerraMindGeneration(["S2L2A"], outputs, tokenizers, size="tiny", timesteps=1, standardize=True, **kwargs)
    load_official(other, "terramind_v1_tiny", filter_generate_state)
    return other.eval()


# ---------------------------------------------------------------------------------------------- sampling
def test_sampling_primitives():
    assert linear_token_budget(1, 196) == [196] and linear_token_budget(3, 10) == [4, 3, 3]
    assert linear_token_budget(5, 3) == [1, 1, 1]  # more steps than tokens: one token per step
    logits = torch.tensor([[5.0, 4.0, 0.0, -1.0], [0.0, 0.0, 9.0, 0.0]])
    kept = sampling.filter_top_p(logits.clone(), 0.5)
    assert torch.isfinite(kept).tolist() == [[True, False, False, False], [False, False, True, False]]
    kept = sampling.filter_top_p(logits.clone(), 0.99)  # the first token crossing p is kept too
    assert torch.isfinite(kept[0]).tolist() == [True, True, False, False]
    assert torch.isfinite(sampling.filter_top_k(logits.clone(), 2)[0]).tolist() == [True, True, False, False]
    assert sampling.sample_tokens(logits.clone(), temperature=0.0).tolist() == [0, 2]
    g = torch.Generator().manual_seed(0)
    draws = sampling.sample_tokens(logits[:1].repeat(500, 1), temperature=1.0, top_p=0.99, generator=g)
    assert set(draws.tolist()) == {0, 1}


def test_nucleus_threshold_matches_the_sorting_reference_with_ties():
    """filter_top_p finds each row's threshold from sorted values; rows whose threshold ties the first removed
    logit are redone by sorting. Coarsely quantised logits make such ties common."""
    g = torch.Generator().manual_seed(3)
    for scale, step in ((0.7, 0.0), (3.0, 0.25), (1.0, 0.5)):
        logits = torch.randn(300, 97, generator=g) * scale
        if step:
            logits = (logits / step).round() * step
        for top_k, top_p in ((0, 0.8), (0, 0.3), (10, 0.9), (0, 1.0)):
            base = sampling.filter_top_k(logits.clone(), top_k)
            expected = base.clone().masked_fill_(sampling._top_p_removal_by_sort(base, top_p), float("-inf"))
            assert torch.equal(sampling.filter_top_p(base.clone(), top_p), expected), (scale, step, top_k, top_p)
    ties = torch.tensor([[3.0, 1.0, 1.0, 1.0, -2.0]])  # p = .79, .10, .10, .10: the nucleus ends inside the tie
    assert torch.isfinite(sampling.filter_top_p(ties.clone(), 0.8)).sum() == 2  # TerraTorch keeps one of three
    assert torch.isfinite(sampling.filter_top_p(ties.clone(), 0.8, terratorch_ties=False)).sum() == 4


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_fast_draw_follows_the_filtered_distribution(temperature):
    logits = torch.tensor([[0.5, 2.0, -3.0, 1.0, -1.0, 1.5]])  # nucleus 0.8 keeps 2.0, 1.5, 1.0
    kept = sampling.filter_top_p(logits.clone(), 0.8)
    expected = torch.softmax(kept / temperature, dim=-1)[0]
    n = 200_000
    draws = sampling.sample_tokens(logits.repeat(n, 1), temperature=temperature, top_p=0.8, exact=False,
                                   generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=6).double() / n
    assert float((freq - expected.double()).abs().max()) < 0.006  # > 5 standard errors
    assert freq[torch.isinf(kept[0])].sum() == 0  # filtered tokens are never drawn
    again = sampling.sample_tokens(logits.repeat(n, 1), temperature=temperature, top_p=0.8, exact=False,
                                   generator=torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)


def test_fast_draw_never_picks_trailing_zero_probabilities():
    probs = torch.tensor([[0.0, 0.25, 0.75, 0.0, 0.0]]).repeat(10_000, 1)
    draws = sampling._inverse_cdf_draw(probs, torch.Generator().manual_seed(1))
    assert set(draws.tolist()) == {1, 2}


def test_roar_decode_covers_every_position_once():
    seen = []

    def logits_fn(tokens, decoded, positions):
        seen.append((int(decoded.sum()), positions.tolist()))
        return torch.zeros(2, len(positions), 7).index_fill_(-1, torch.tensor([3]), 1.0)
    result = sampling.roar_decode(logits_fn, 2, 10, seed=1, budget=[4, 3, 3], temperature=0.0)
    assert [d for d, _ in seen] == [0, 4, 7]
    assert sorted(p for _, ps in seen for p in ps) == list(range(10))
    assert result.tokens.tolist() == [[3] * 10] * 2 and result.steps == 3


def test_autoregressive_decode_stops_at_eos():
    def step(ids):  # always predicts "previous id + 1"
        return torch.nn.functional.one_hot(ids[:, -1] + 1, 10).float() * 10
    out = sampling.autoregressive_decode(step, torch.tensor([[5], [2]]), max_new_tokens=8, eos_id=6, seed=0,
                                         temperature=0.0)
    assert out.tolist() == [[5, 6, 7, 8, 9], [2, 3, 4, 5, 6]]  # row 1 reaches EOS last; then decoding stops


# ---------------------------------------------------------------------------------------------- outputs
def test_outputs_shapes_units_and_inputs_untouched(generator):
    x = _s2()
    inputs = {"S2L2A": x}
    out = generator(inputs, seed=0)
    assert list(out) == ["LULC", "NDVI"]
    assert out["LULC"].shape == (2, 10, 64, 64) and out["NDVI"].shape == (2, 1, 64, 64)
    # diffusion outputs are clamped to [-1, 1] in standardized space -> mean +- std in physical units
    assert out["NDVI"].min() >= NDVI_MEAN - NDVI_STD - 1e-5 and out["NDVI"].max() <= NDVI_MEAN + NDVI_STD + 1e-5
    assert list(inputs) == ["S2L2A"] and inputs["S2L2A"] is x and torch.equal(x, _s2())
    raw = generator(inputs, seed=0, standardize=False)["NDVI"]
    assert raw.min() >= -1 - 1e-6 and raw.max() <= 1 + 1e-6


def test_lulc_output_is_the_decoded_tokens(generator):
    tokens, info = generator.generate_tokens({"S2L2A": _s2(1)}, seed=4)
    assert tokens["LULC"].shape == (1, 4, 4) and tokens["LULC"].dtype == torch.long
    out = generator.decode_outputs(tokens, info)
    direct = generator.tokenizer["tok_lulc@224"].decode_tokens(tokens["LULC"], image_size=(64, 64))
    assert torch.allclose(out["LULC"], direct)


def test_seed_reproducible_and_global_rng_untouched(generator):
    x = _s2(1)
    state = torch.get_rng_state()
    a, _ = generator.generate_tokens({"S2L2A": x}, seed=123)
    b, _ = generator.generate_tokens({"S2L2A": x}, seed=123)
    c, _ = generator.generate_tokens({"S2L2A": x}, seed=124)
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    same = generator({"S2L2A": x}, seed=7)["NDVI"]
    assert torch.equal(same, generator({"S2L2A": x}, seed=7)["NDVI"])


def test_greedy_ignores_the_seed(generator):
    x = _s2(1)
    generator.temps = [0.0, 0.0]
    try:
        a, _ = generator.generate_tokens({"S2L2A": x}, seed=1)
        b, _ = generator.generate_tokens({"S2L2A": x}, seed=2)
    finally:
        generator.temps = [1.0, 1.0]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_offset_shifts_the_physical_output(generator):
    shifted = _sibling(generator, ["NDVI"], offset={"NDVI": 0.5})
    plain = _sibling(generator, ["NDVI"])
    x = _s2(1)
    assert torch.allclose(shifted({"S2L2A": x}, seed=3)["NDVI"], plain({"S2L2A": x}, seed=3)["NDVI"] + 0.5, atol=1e-6)


def test_bf16_decoders_stay_close(generator):
    tokens, info = generator.generate_tokens({"S2L2A": _s2(1)}, seed=2)
    exact = generator.decode_outputs(tokens, info)
    fast = generator.decode_outputs(tokens, info, precision="bf16")
    assert all(fast[k].dtype == torch.float32 and fast[k].shape == exact[k].shape for k in exact)
    lulc = (fast["LULC"] - exact["LULC"]).abs().max() / exact["LULC"].abs().max()
    assert lulc < 0.05 and (fast["LULC"].argmax(1) == exact["LULC"].argmax(1)).float().mean() > 0.9
    # ...and bf16 really ran (a silently ignored setting would give bit-identical values)
    assert lulc > 0 and not torch.equal(fast["NDVI"], exact["NDVI"])
    assert (fast["NDVI"] - exact["NDVI"]).abs().max() <= 2 * NDVI_STD  # bounded like any decode
    with pytest.raises(ValueError, match="precision must be"):
        generator.decode_outputs(tokens, info, precision="fp8")


def test_bf16_generation_keeps_bf16_weights_and_refuses_fp32_after(hub):
    model = build_model("terramind_v1_tiny_generate", modalities=["S2L2A"], output_modalities=["LULC"],
                        pretrained=True, timesteps=1, standardize=True, precision="bf16")
    x = _s2(2)
    out = model({"S2L2A": x}, seed=5)
    assert out["LULC"].dtype == torch.float32 and out["LULC"].shape == (2, 10, 64, 64)
    assert torch.isfinite(out["LULC"]).all()
    assert torch.equal(out["LULC"], model({"S2L2A": x}, seed=5)["LULC"])  # seeded: reproducible
    transformer = model.sampler.model
    # what runs under autocast holds bf16 weights once; the input embedding (run before it) stays fp32
    assert transformer.encoder[0].attn.qkv.weight.dtype == torch.bfloat16
    assert transformer.decoder[0].mlp.fc1.weight.dtype == torch.bfloat16
    assert transformer.mask_token.dtype == torch.float32 and transformer.encoder_norm.weight.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in transformer.encoder_embeddings.parameters())
    lulc = model.tokenizer["tok_lulc@224"]
    linears = [m for m in lulc.decoder.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    assert lulc.post_quant_proj.weight.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in lulc.encoder.parameters())  # tokens of LULC inputs stay exact
    with pytest.raises(ValueError, match="precision='fp32'"):
        model({"S2L2A": x}, seed=5, precision="fp32")


def test_fp32_model_asked_for_bf16_keeps_fp32_weights(generator):
    x = _s2(1)
    tokens, _ = generator.generate_tokens({"S2L2A": x}, seed=8, precision="bf16")
    assert tokens["LULC"].shape == (1, 4, 4)
    assert generator.sampler.model.encoder[0].attn.qkv.weight.dtype == torch.float32
    exact, _ = generator.generate_tokens({"S2L2A": x}, seed=8)  # fp32 still works, TerraTorch's stream
    assert torch.equal(exact["LULC"], generator.generate_tokens({"S2L2A": x}, seed=8)[0]["LULC"])


def test_non_square_inputs(generator):
    x = _s2(1, 64, 128)
    tokens, info = generator.generate_tokens({"S2L2A": x}, seed=0)
    assert tokens["LULC"].shape == (1, 4, 8) and info["grid"] == (4, 8)
    out = generator.decode_outputs(tokens, info)
    assert out["LULC"].shape == (1, 10, 64, 128) and out["NDVI"].shape == (1, 1, 64, 128)
    tall = generator({"S2L2A": _s2(1, 96, 64)}, seed=0)
    assert tall["LULC"].shape == (1, 10, 96, 64) and tall["NDVI"].shape == (1, 1, 96, 64)


def test_multi_step_decoding_sees_earlier_tokens(generator):
    model = _sibling(generator, ["LULC"], decoding_steps=4)
    assert linear_token_budget(4, 16) == [4, 4, 4, 4]
    encoder_lengths = []
    encode = model.sampler.model.encode

    def spy(enc):
        encoder_lengths.append(enc.tokens.shape[1])
        return encode(enc)
    model.sampler.model.encode = spy
    try:
        tokens, info = model.generate_tokens({"S2L2A": _s2(2)}, seed=5)
    finally:
        del model.sampler.model.encode
    # step 1 sees the 16 S2 tokens; steps 2-4 also see the 4, 8, 12 LULC tokens decoded before
    assert encoder_lengths == [16, 20, 24, 28]
    assert tokens["LULC"].shape == (2, 4, 4)
    again, _ = model.generate_tokens({"S2L2A": _s2(2)}, seed=5)
    assert torch.equal(tokens["LULC"], again["LULC"])
    assert model.decode_outputs(tokens, info)["LULC"].shape == (2, 10, 64, 64)


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("output,message", [("S2L1C", "S2L1C"), ("s2l1c", "S2L2A"), ("RGB", "RGB"),
                                            ("S2RGB", "RGB"), ("clouds", "Unknown")])
def test_bad_outputs_are_refused(output, message):
    with pytest.raises(UnknownModalityError, match=message):
        build_model("terramind_v1_tiny_generate", modalities=["S2L2A"], output_modalities=[output])


def test_bad_construction_arguments():
    with pytest.raises(ValueError, match="Output modalities not provided"):
        build_model("terramind_v1_tiny_generate", modalities=["S2L2A"], output_modalities=[])
    with pytest.raises(ValueError, match="both tokenized inputs and outputs"):
        build_model("terramind_v1_tiny_generate", modalities=["LULC"], output_modalities=["LULC"])
    with pytest.raises(TypeError, match="unexpected keyword"):
        build_model("terramind_v1_tiny_generate", modalities=["S2L2A"], output_modalities=["DEM"], temperature=1)
    with pytest.raises(ValueError, match="temps"):
        build_model("terramind_v1_tiny_generate", modalities=["S2L2A"], output_modalities=["LULC"], temps=-1.0)
    with pytest.raises(ValueError, match="decoding_steps"):
        build_model("terramind_v1_tiny_generate", modalities=["S2L2A"], output_modalities=["LULC"], decoding_steps=0)
    with pytest.raises(ValueError, match="offset"):
        build_model("terramind_v1_tiny_generate", modalities=["S2L2A"], output_modalities=["LULC"],
                    offset={"DEM": 1.0})


def test_inputs_as_terratorch_takes_them(generator):
    """A dict, keyword arguments or one tensor (the first modality); other names in a batch dict are ignored
    with a warning, as in TerraTorch."""
    x = _s2(1)
    expected, _ = generator.generate_tokens({"S2L2A": x}, seed=3)
    for call in (lambda: generator.generate_tokens(S2L2A=x, seed=3), lambda: generator.generate_tokens(x, seed=3)):
        tokens, _ = call()
        assert torch.equal(tokens["LULC"], expected["LULC"])
    with pytest.warns(UserWarning, match="Unknown input modality 'mask'"):
        tokens, _ = generator.generate_tokens({"S2L2A": x, "mask": torch.zeros(1, 64, 64)}, seed=3)
    assert torch.equal(tokens["LULC"], expected["LULC"])


def test_bad_inputs_at_forward(generator):
    with pytest.raises(ValueError, match="No valid inputs"):
        with pytest.warns(UserWarning, match="Unknown input modality 'S1GRD'"):
            generator({"S1GRD": torch.zeros(1, 2, 64, 64)})
    with pytest.raises(ValueError, match="multiples of 32"):
        generator({"S2L2A": _s2(1, 48, 64)})
    with pytest.raises(ValueError, match="multiples of 16"):
        generator({"S2L2A": _s2(1, 40, 64)})
    with pytest.raises(ValueError, match=r"\[B, 12, H, W\]"):
        generator({"S2L2A": torch.zeros(1, 13, 64, 64)})
    with pytest.raises(ValueError, match="timesteps"):
        generator({"S2L2A": _s2(1)}, timesteps=0)


def test_multi_step_needs_the_checkpoint_token_embedding(hub):
    # the fake checkpoint, like TerraTorch's ViT inputs, has encoder embeddings for LULC/NDVI tokens only
    with pytest.raises(ValueError, match="tok_dem@224"):
        build_model("terramind_v1_tiny_generate", modalities=["S2L2A"], output_modalities=["DEM"], pretrained=True,
                    decoding_steps=2)


# ---------------------------------------------------------------------------------------------- TiM
@pytest.fixture(scope="module")
def tim(hub):
    return build_model("terramind_v1_tiny_tim", modalities=["S2L2A", "S1GRD"], pretrained=True)


def _tim_inputs(height=64, width=64):
    g = torch.Generator().manual_seed(1)
    return {"S2L2A": torch.randn(2, 12, height, width, generator=g),
            "S1GRD": torch.randn(2, 2, height, width, generator=g)}


def test_tim_outputs_and_seed(tim):
    out = tim(_tim_inputs(), seed=3)
    assert len(out) == 12 and all(o.shape == (2, 16, 192) for o in out)
    assert torch.equal(out[-1], tim(_tim_inputs(), seed=3)[-1])
    assert not torch.equal(out[-1], tim(_tim_inputs(), seed=4)[-1])
    assert "tok_lulc@224" not in tim.tokenizer  # imagined LULC is never decoded, so no LULC tokenizer is loaded
    wide = tim(_tim_inputs(64, 96), seed=3)
    assert wide[-1].shape == (2, 24, 192)


def test_tim_dict_merge_keeps_only_real_inputs(tim):
    tim.merge_method = "dict"
    try:
        out = tim(_tim_inputs(), seed=3)
    finally:
        tim.merge_method = "mean"
    assert list(out[-1]) == ["S2L2A", "S1GRD"]


def test_tim_given_lulc_tokens_skip_generation(tim):
    calls = []
    imagine = tim._imagine
    tim._imagine = lambda *a, **k: calls.append(1) or imagine(*a, **k)
    try:
        out = tim({**_tim_inputs(), "LULC": torch.randint(0, 4375, (2, 4, 4))}, seed=0)
        with pytest.raises(ValueError, match="token ids"):
            tim({**_tim_inputs(), "LULC": torch.zeros(2, 1, 64, 64)})
    finally:
        del tim._imagine
    assert not calls and out[-1].shape == (2, 16, 192)


def test_tim_errors(hub):
    with pytest.raises(NotImplementedError, match="bands"):
        build_model("terramind_v1_tiny_tim", modalities=["S2L2A"], bands={"S2L2A": ["RED", "GREEN", "BLUE"]})
    with pytest.raises(NotImplementedError, match="pre-trained modalities"):
        build_model("terramind_v1_tiny_tim", modalities=[{"PLANET": 4}])
    with pytest.raises(UnknownModalityError):
        build_model("terramind_v1_tiny_tim", modalities=["S2L2A"], tim_modalities=["clouds"])


def test_tim_multi_step(hub):
    model = build_model("terramind_v1_tiny_tim", modalities=["S2L2A"], pretrained=True, tim_decoding_steps=2)
    out = model({"S2L2A": _tim_inputs()["S2L2A"]}, seed=1)
    assert out[-1].shape == (2, 16, 192)
