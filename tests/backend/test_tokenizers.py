"""Our TerraMind 1.0 tokenizers without TerraTorch: shapes, non-square grids, FSQ, DDIM schedule, loading, errors.

Models are built with random weights (``pretrained=False``) or from small files in ``tmp_path``; decoding runs
2 DDIM steps on 32x64 images. Parity with TerraTorch lives in tests/parity/test_tokenizer_parity.py.
"""
from __future__ import annotations

import gc
import math

import pytest
import torch

from terramind_backend import build_model
from terramind_backend.hub import WeightsNotAvailable
from terramind_backend.models.tokenizers import DDIMSampler, DiVAE, FiniteScalarQuantizer, VQVAE, build_tokenizer
from terramind_backend.models.tokenizers.unet import patchify, unpatchify
from tests.conftest import empty_hub  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def dem():
    torch.manual_seed(0)
    model = build_tokenizer("dem")
    yield model
    del model
    gc.collect()


@pytest.fixture(scope="module")
def lulc():
    torch.manual_seed(0)
    model = build_model("terramind_v1_tokenizer_lulc")
    yield model
    del model
    gc.collect()


# -- FSQ --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("levels", ["8-8-8-6-5", "7-5-5-5-5"])
def test_fsq_indices_and_codes_round_trip(levels):
    fsq = FiniteScalarQuantizer(levels)
    assert fsq.codebook_size == math.prod(int(v) for v in levels.split("-"))
    every = torch.arange(fsq.codebook_size).reshape(1, 1, -1)
    codes = fsq.indices_to_codes(every)
    assert codes.shape == (1, 5, 1, fsq.codebook_size)
    assert codes.min() == 0 and codes.max() == 1
    # Latents whose sigmoid lands exactly on each code quantize back to the same index.
    latents = torch.logit(codes.clamp(1e-4, 1 - 1e-4).double()).float()
    quant, loss, tokens = fsq(latents)
    assert tokens.dtype == torch.int32 and torch.equal(tokens.long(), every)
    assert torch.allclose(quant, codes) and float(loss) == 0.0


def test_fsq_first_level_is_least_significant():
    fsq = FiniteScalarQuantizer("8-8-8-6-5")
    codes = fsq.indices_to_codes(torch.tensor([[[1, 8, 15359]]]))[0, :, 0]
    assert codes[:, 0].tolist() == pytest.approx([1 / 7, 0, 0, 0, 0])
    assert codes[:, 1].tolist() == pytest.approx([0, 1 / 7, 0, 0, 0])
    assert codes[:, 2].tolist() == pytest.approx([1, 1, 1, 1, 1])


def test_fsq_has_no_state_dict_entries():
    assert FiniteScalarQuantizer("7-5-5-5-5").state_dict() == {}


def test_fsq_rejects_bad_tokens():
    fsq = FiniteScalarQuantizer("7-5-5-5-5")
    with pytest.raises(ValueError, match=r"\[0, 4374\]"):
        fsq.indices_to_codes(torch.tensor([[[4375]]]))
    with pytest.raises(TypeError, match="integers"):
        fsq.indices_to_codes(torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match=r"\[B, h, w\]"):
        fsq.indices_to_codes(torch.zeros(4, dtype=torch.long))


# -- DDIM -------------------------------------------------------------------------------------------------
def test_ddim_trailing_timesteps():
    sampler = DDIMSampler()
    assert sampler.timesteps(10) == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    fifty = sampler.timesteps(50)
    assert fifty[:3] == [999, 979, 959] and fifty[-1] == 19 and len(fifty) == 50
    assert sampler.timesteps(1) == [999]
    # 1000 // 3 = 333 does not divide 1000: TerraTorch's trailing spacing then runs 4 model calls.
    assert sampler.timesteps(3) == [999, 666, 333, 0]
    assert sampler.timesteps(4, "leading") == [750, 500, 250, 0]
    with pytest.raises(ValueError, match="between 1 and 1000"):
        sampler.timesteps(0)
    with pytest.raises(ValueError, match="spacing"):
        sampler.timesteps(10, "cosine")


def test_ddim_zero_terminal_snr_schedule_matches_the_formula():
    sampler = DDIMSampler()
    abar = sampler.alphas_cumprod.double()
    # Independent float64 computation: linear betas, √ᾱ shifted to 0 at T and rescaled to keep √ᾱ_0.
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    root = torch.cumprod(1 - betas, 0).sqrt()
    root = (root - root[-1]) * root[0] / (root[0] - root[-1])
    assert torch.allclose(abar, root ** 2, atol=2e-6)
    assert abar[-1] == 0.0
    assert abar[0].item() == pytest.approx(0.9999, abs=1e-7)
    assert abar[499].item() == pytest.approx(0.0760, abs=1e-4)  # mid-schedule, float64 value 0.07603
    assert torch.all(abar[1:] < abar[:-1])


def test_ddim_step():
    sampler = DDIMSampler()
    sample, x0 = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4) * 2
    # Last step: ᾱ_prev = 1, so the result is x0 clamped to [-1, 1] (thresholding with sample_max_value 1).
    assert torch.equal(sampler.step(x0, 99, sample, 10), x0.clamp(-1, 1))
    # First step: ᾱ_999 = 0, so ε is the sample itself.
    a_prev = sampler.alphas_cumprod[899]
    expected = a_prev.sqrt() * x0.clamp(-1, 1) + (1 - a_prev).sqrt() * sample
    assert torch.allclose(sampler.step(x0, 999, sample, 10), expected, atol=1e-6)


# -- patch folding ----------------------------------------------------------------------------------------
def test_patchify_order_and_round_trip():
    x = torch.arange(2 * 3 * 8 * 12, dtype=torch.float32).reshape(2, 3, 8, 12)
    folded = patchify(x, 4)
    assert folded.shape == (2, 48, 2, 3)
    # channel index = c*16 + ph*4 + pw (c slowest), spatial index = patch position
    assert folded[1, 2 * 16 + 1 * 4 + 3, 1, 2] == x[1, 2, 4 + 1, 8 + 3]
    assert torch.equal(unpatchify(folded, 3, 4), x)


# -- DiVAE ------------------------------------------------------------------------------------------------
def test_divae_shapes_non_square(dem):
    assert isinstance(dem, DiVAE) and not dem.training
    x = torch.randn(2, 1, 32, 64)
    codes, loss, tokens = dem.encode(x)
    assert codes.shape == (2, 5, 2, 4) and tokens.shape == (2, 2, 4) and tokens.dtype == torch.int32
    assert float(loss) == 0.0
    assert torch.equal(dem.tokenize(x), tokens)
    out = dem.decode_tokens(tokens, timesteps=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 1, 32, 64) and out.abs().max() <= 1.0
    # explicit output size, rectangular the other way round
    tall = dem.decode_tokens(tokens, timesteps=1, image_size=(64, 32), generator=torch.Generator().manual_seed(0))
    assert tall.shape == (2, 1, 64, 32)
    assert dem(x, timesteps=1).shape == (2, 1, 32, 64)


def test_divae_noise_is_reproducible(dem):
    tokens = torch.randint(0, 15360, (1, 2, 2))
    a = dem.decode_tokens(tokens, timesteps=2, generator=torch.Generator().manual_seed(3))
    b = dem.decode_tokens(tokens, timesteps=2, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(3)
    c = dem.decode_tokens(tokens, timesteps=2)  # global CPU RNG, as TerraTorch draws it
    noise = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    d = dem.decode_tokens(tokens, timesteps=2, noise=noise)
    assert torch.equal(a, b) and torch.equal(a, c) and torch.equal(a, d)
    steps = []
    dem.decode_tokens(tokens, timesteps=3, progress=lambda done, total: steps.append((done, total)))
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_divae_bf16_precision_stays_close(dem):
    tokens = torch.randint(0, 15360, (1, 2, 2))
    fp32 = dem.decode_tokens(tokens, timesteps=1, generator=torch.Generator().manual_seed(1))
    bf16 = dem.decode_tokens(tokens, timesteps=1, generator=torch.Generator().manual_seed(1), precision="bf16")
    assert bf16.dtype == torch.float32 and (bf16 - fp32).abs().max() < 0.1
    with pytest.raises(ValueError, match="precision"):
        dem.decode_tokens(tokens, timesteps=1, precision="fp8")


def test_divae_errors(dem):
    with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
        dem.encode(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="multiples of 16"):
        dem.encode(torch.randn(1, 1, 30, 32))
    with pytest.raises(ValueError, match="multiples of 32"):
        dem.decode_tokens(torch.zeros(1, 3, 3, dtype=torch.long), timesteps=1)
    with pytest.raises(ValueError, match="multiples of 32"):
        dem.decode_tokens(torch.zeros(1, 2, 2, dtype=torch.long), timesteps=1, image_size=(48, 64))
    with pytest.raises(ValueError, match="noise must be shaped"):
        dem.decode_tokens(torch.zeros(1, 2, 2, dtype=torch.long), timesteps=1, noise=torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match=r"\[0, 15359\]"):
        dem.decode_tokens(torch.full((1, 2, 2), 15360), timesteps=1)


# -- VQVAE (LULC) -----------------------------------------------------------------------------------------
def test_vqvae_shapes_and_inputs(lulc):
    assert isinstance(lulc, VQVAE)
    classes = torch.randint(0, 10, (2, 32, 64))
    codes, _, tokens = lulc.encode(classes)
    assert codes.shape == (2, 5, 2, 4) and tokens.shape == (2, 2, 4)
    assert int(tokens.max()) < 4375
    onehot = torch.nn.functional.one_hot(classes, 10).permute(0, 3, 1, 2).float()
    assert torch.equal(lulc.tokenize(onehot), tokens)
    assert torch.equal(lulc.tokenize(classes[:, None].float()), tokens)
    logits = lulc.decode_tokens(tokens)
    assert logits.shape == (2, 10, 32, 64)
    rec, loss = lulc(classes)
    assert torch.equal(rec, logits) and float(loss) == 0.0
    fast = lulc.decode_tokens(tokens, precision="bf16")
    assert fast.dtype == torch.float32 and (fast.argmax(1) == logits.argmax(1)).float().mean() > 0.9


def test_vqvae_errors(lulc):
    with pytest.raises(ValueError, match=r"class indices must lie in \[0, 9\]"):
        lulc.encode(torch.full((1, 32, 32), 10))
    with pytest.raises(ValueError, match="whole numbers"):
        lulc.encode(torch.full((1, 32, 32), 0.5))
    with pytest.raises(ValueError, match="one-hot"):
        lulc.encode(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="multiples of 16"):
        lulc.encode(torch.zeros(1, 40, 32, dtype=torch.long))


# -- building and loading ---------------------------------------------------------------------------------
def test_state_dict_layout(lulc, tmp_path):
    keys = list(lulc.state_dict())
    assert len(keys) == 310
    assert {"encoder.pos_emb", "encoder.proj.weight", "quant_proj.weight", "post_quant_proj.weight",
            "decoder.out_proj.weight", "decoder.blocks.11.mlp.fc2.bias", "decoder.post_mlp.fc1.weight"} <= set(keys)
    assert lulc.state_dict()["encoder.pos_emb"].shape == (1, 768, 16, 16)
    # A local checkpoint loads strictly into a fresh model (built on the meta device, then assigned).
    path = tmp_path / "lulc.pt"
    torch.save(lulc.state_dict(), path)
    again = build_tokenizer("terramind_v1_tokenizer_lulc", ckpt_path=str(path))
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), lulc.state_dict().values()))
    classes = torch.randint(0, 10, (1, 32, 32))
    assert torch.equal(again.tokenize(classes), lulc.tokenize(classes))
    broken = dict(lulc.state_dict())
    broken.pop("decoder.out_proj.bias")
    torch.save(broken, path)
    with pytest.raises(RuntimeError, match=r"(?s)does not match.*out_proj.bias"):
        build_tokenizer("lulc", ckpt_path=str(path))


def test_divae_state_dict_layout(dem):
    keys = list(dem.state_dict())
    assert len(keys) == 601
    assert {"decoder.time_embed.0.weight", "decoder.input_blocks.0.0.weight", "decoder.input_blocks.4.0.op.weight",
            "decoder.input_blocks.9.1.qkv.weight", "decoder.middle_block.1.proj_out.weight",
            "decoder.output_blocks.3.2.conv.weight", "decoder.output_blocks.11.1.conv.weight",
            "decoder.output_blocks.12.0.skip_connection.weight", "decoder.out.2.weight"} <= set(keys)
    assert dem.state_dict()["decoder.input_blocks.0.0.weight"].shape == (256, 16 + 5, 3, 3)


def test_build_errors(empty_hub):  # noqa: F811
    with pytest.raises(ValueError, match="Unknown TerraMind 1.0 tokenizer"):
        build_tokenizer("s2l1c")
    with pytest.raises(TypeError, match="unexpected keyword argument 'depth'"):
        build_tokenizer("dem", depth=3)
    with pytest.raises(ValueError, match="n_channels=3 is not supported"):
        build_tokenizer("dem", n_channels=3)
    with pytest.raises(ValueError, match="precision"):
        build_tokenizer("dem", precision="fast")
    with pytest.raises(WeightsNotAvailable, match="TerraMind-1.0-Tokenizer-DEM"):
        build_tokenizer("dem", pretrained=True)
