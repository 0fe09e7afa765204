"""Tokenizer parity: TerraTorch 1.1.1's six TerraMind 1.0 tokenizers vs ours on the same weights.

Both load the random official-layout files of ``.cache/fake-hub`` with ``pretrained=True`` (offline, through
the Hugging Face cache). All six tokenizers are the full architecture (ViT-B encoder, UNet or ViT-B decoder);
inputs are small (32x64 pixels, 2x4 tokens) and diffusion runs 2 DDIM steps to keep CI time sane, plus one
224x224 encode for S2L2A and LULC.

Checked: FSQ codes and tokens identical; DiVAE decodes with the same tokens, initial noise (a seeded
generator, and TerraTorch's default global CPU RNG) and steps within 1e-4 of the output scale; VQVAE logits;
full reconstruction ``forward``. Non-square grids are compared where TerraTorch handles them (encode,
decode_tokens); TerraTorch's DiVAE ``forward`` assumes square inputs, so it is compared on a square one.
"""
from __future__ import annotations

import gc

import pytest
import torch


from tests.conftest import fake_hub  # noqa: E402,F401  (fixture)
from terramind_backend.models.tokenizers import TOKENIZERS, build_tokenizer  # noqa: E402

RTOL = 1e-4
STEPS = 2


@pytest.fixture
def pair(request, fake_hub, monkeypatch):
    """(TerraTorch tokenizer, ours) for ``request.param``, both eval mode, freed afterwards."""
    import huggingface_hub.constants as hf_constants
    from terratorch.registry import FULL_MODEL_REGISTRY

    # huggingface_hub reads HF_HUB_CACHE/HF_HUB_OFFLINE at import; TerraTorch relies on those constants.
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(fake_hub))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    # Importing TerraTorch switches float32 matmuls to bf16 ("medium", from its clay_v15 module); compare
    # true float32 on both sides.
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    name = f"terramind_v1_tokenizer_{request.param}"
    models = []
    try:
        models.append(FULL_MODEL_REGISTRY.build(name, pretrained=True).eval())
        models.append(build_tokenizer(name, pretrained=True))
        yield tuple(models)
    finally:
        models.clear()
        gc.collect()
        torch.set_float32_matmul_precision(precision)


def _close(ours: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    assert ours.shape == ref.shape, f"{what}: shape {tuple(ours.shape)} != {tuple(ref.shape)}"
    scale = max(ref.abs().max().item(), 1e-6)
    delta = (ours.double() - ref.double()).abs().max().item()
    assert delta <= RTOL * scale, f"{what}: max |Δ| {delta:.3g} > {RTOL} x {scale:.3g}"


def _image(key: str, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if key == "lulc":
        return torch.randint(0, 10, (2, h, w), generator=g)
    return torch.randn(2, TOKENIZERS[key].channels, h, w, generator=g)


def _check_encode(ref, ours, x, what):
    with torch.no_grad():
        q_ref, _, t_ref = ref.encode(x)
    q, loss, t = ours.encode(x)
    assert t.dtype == t_ref.dtype and torch.equal(t, t_ref), f"{what}: tokens differ"
    assert torch.equal(q, q_ref), f"{what}: FSQ codes differ"
    assert float(loss.sum()) == 0.0
    assert torch.equal(ours.tokens_to_embedding(t), q), f"{what}: tokens -> codes is not the inverse"
    return t


@pytest.mark.parametrize("pair", ["s2l2a", "s1rtc", "s1grd", "dem", "ndvi"], indirect=True)
def test_divae_parity(pair):
    ref, ours = pair
    key = ours.name.rsplit("_", 1)[-1]
    tokens = _check_encode(ref, ours, _image(key, 32, 64), f"{key} encode 32x64")

    # Same tokens, same initial noise from a seeded generator, same steps (non-square token grid).
    with torch.no_grad():
        dec_ref = ref.decode_tokens(tokens, timesteps=STEPS, generator=torch.Generator().manual_seed(7),
                                    verbose=False)
    dec = ours.decode_tokens(tokens, timesteps=STEPS, generator=torch.Generator().manual_seed(7))
    _close(dec, dec_ref, f"{key} decode_tokens (generator)")
    assert dec.abs().max() <= 1.0
    # Not all saturated: the comparison has to see real values.
    assert (dec.abs() < 0.999).float().mean() > 0.05

    # Default path: both draw the initial noise from the global CPU RNG.
    torch.manual_seed(11)
    with torch.no_grad():
        dec_ref = ref.decode_tokens(tokens[:1, :, :2], timesteps=STEPS, verbose=False)
    torch.manual_seed(11)
    dec = ours.decode_tokens(tokens[:1, :, :2], timesteps=STEPS)
    _close(dec, dec_ref, f"{key} decode_tokens (global RNG)")

    # Full reconstruction on a square input (TerraTorch decodes at W x W).
    x = _image(key, 32, 32, seed=3)
    with torch.no_grad():
        rec_ref = ref(x, timesteps=STEPS, generator=torch.Generator().manual_seed(5), verbose=False)
    rec = ours(x, timesteps=STEPS, generator=torch.Generator().manual_seed(5))
    _close(rec, rec_ref, f"{key} forward")


@pytest.mark.parametrize("pair", ["lulc"], indirect=True)
def test_vqvae_parity(pair):
    ref, ours = pair
    x = _image("lulc", 32, 64)
    tokens = _check_encode(ref, ours, x, "lulc encode [B,H,W] classes")
    _check_encode(ref, ours, x[:, None], "lulc encode [B,1,H,W] classes")
    onehot = torch.nn.functional.one_hot(x, 10).permute(0, 3, 1, 2).float()
    _check_encode(ref, ours, onehot, "lulc encode one-hot")

    with torch.no_grad():
        logits_ref = ref.decode_tokens(tokens)
        rec_ref, loss_ref = ref(x)
    _close(ours.decode_tokens(tokens), logits_ref, "lulc decode_tokens logits")
    rec, loss = ours(x)
    _close(rec, rec_ref, "lulc forward logits")
    assert torch.equal(rec.argmax(1), rec_ref.argmax(1)) or (rec.argmax(1) != rec_ref.argmax(1)).float().mean() < 1e-3
    assert float(loss) == float(loss_ref) == 0.0

    # One full-size tile.
    _check_encode(ref, ours, _image("lulc", 224, 224, seed=1), "lulc encode 224")


@pytest.mark.parametrize("pair", ["s2l2a"], indirect=True)
def test_full_size_encode_parity(pair):
    ref, ours = pair
    _check_encode(ref, ours, _image("s2l2a", 224, 224, seed=2), "s2l2a encode 224")
