"""Coordinates (lon, lat) without TerraTorch: tokenizer (blank and the fake hub's official-format file), decoding,
generation bookkeeping, and the backbone / TiM / generation models taking and producing Coordinates."""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from tests.conftest import coords_hub, empty_hub, fake_hub  # noqa: F401  (fixtures)
from terramind_backend.hub import WeightsNotAvailable
from terramind_backend.models import build_model
from terramind_backend.models.coords import (EOS_ID, PAD_ID, S1_ID, CoordsTokenizer, build_coords_tokenizer,
                                             generation_input)
from terramind_backend.models.tokenizers import build_tokenizer


@pytest.fixture
def official(coords_hub):
    return build_tokenizer("coords", pretrained=True)


def test_snapping_and_text_format():
    coords = torch.tensor([[7.1, 46.3], [-0.1, 0.124], [179.99, -89.9], [0.125, 0.375]])
    assert CoordsTokenizer.texts(coords) == [
        "lat=46.25 lon=7.00 [EOS]", "lat=0.00 lon=-0.00 [EOS]", "lat=-90.00 lon=180.00 [EOS]",
        "lat=0.50 lon=0.00 [EOS]",  # torch rounds half to even: 0.5 -> 0, 1.5 -> 2
    ]


def test_official_file_through_the_hub(official):
    ids = official.tokenize(torch.tensor([[7.1, 46.3], [-122.4, 37.8]]))
    assert ids.shape == (2, 3) and ids[:, -1].tolist() == [EOS_ID] * 2  # lat token, lon token, [EOS]
    assert official.decode(ids) == [[7.0, 46.25], [-122.5, 37.75]]
    enc = official.encode(torch.tensor([[7.1, 46.3]]))
    assert set(enc) == {"tensor", "input_mask", "target_mask", "decoder_attention_mask"}
    assert not enc["input_mask"].any() and enc["target_mask"].all()
    assert official.sentinel_ids == {4, 5, 6} and official.pad_id == PAD_ID


def test_missing_official_file_is_a_clear_error(empty_hub):
    with pytest.raises(WeightsNotAvailable, match="TerraMind-1.0-Tokenizer-Coords/config.json"):
        build_coords_tokenizer(pretrained=True)


def test_blank_tokenizer_and_bad_input():
    blank = build_coords_tokenizer(pretrained=False)
    ids = blank.tokenize(torch.tensor([[7.1, 46.3], [8.0, 40.0]]))
    assert ids[:, -1].tolist() == [EOS_ID, EOS_ID] and set(ids[:, :-1].flatten().tolist()) == {1}  # all [UNK]
    with pytest.raises(ValueError, match="different lengths"):
        blank.tokenize(torch.tensor([[7.1, 46.3], [-8.0, 40.0]]))  # the minus sign is one more piece
    with pytest.raises(ValueError, match=r"\[batch, 2\]"):
        blank.tokenize(torch.tensor([7.1, 46.3]))
    with pytest.raises(ValueError, match="float"):
        blank.tokenize(torch.tensor([[7, 46]]))


def test_decode_gives_nan_with_a_warning_for_non_coordinates(official):
    with pytest.warns(UserWarning, match="not a coordinate"):
        out = official.decode(torch.tensor([[S1_ID, PAD_ID], [1, 1]]))
    assert all(math.isnan(v) for row in out for v in row)


def test_generation_bookkeeping(official):
    assert official.empty_target(2, 4, "cpu").tolist() == [[5, 5, 0, 6]] * 2
    # what follows the first [S_1] up to the next sentinel; rows padded with [PAD]
    generated = torch.tensor([[5, 100, 200, 6], [5, 300, 4, 400]])
    assert official.merge_generated(generated).tolist() == [[100, 200], [300, PAD_ID]]
    ids = torch.tensor([[10, 11, EOS_ID, 12], [10, 11, EOS_ID, 12]])
    assert generation_input(ids).tolist() == [[10, 11, EOS_ID]] * 2
    with pytest.warns(UserWarning, match="EOS"):
        assert generation_input(torch.tensor([[10, 11]])).tolist() == [[EOS_ID]]


def _s2(batch=2, size=32):
    return torch.randn(batch, 12, size, size, generator=torch.Generator().manual_seed(0))


def test_backbone_tim_and_generation_take_coordinates(coords_hub):
    coords = torch.tensor([[7.1, 46.3], [-122.4, 37.8]])
    vit = build_model("terramind_v1_tiny", modalities=["S2L2A", "location"], pretrained=True, merge_method=None)
    out = vit({"S2L2A": _s2(), "location": coords})
    assert out[-1].shape == (2, 4 + 3, 192)  # 4 image tokens + 3 coordinate tokens
    mean = build_model("terramind_v1_tiny", modalities=["S2L2A", "Coordinates"], pretrained=True)
    assert mean({"S2L2A": _s2(), "Coordinates": coords})[-1].shape == (2, 4, 192)  # sequences left out of the mean

    tim = build_model("terramind_v1_tiny_tim", modalities=["S2L2A"], tim_modalities=["coords", "DEM"],
                      pretrained=True, merge_method=None, seed=3)
    assert "coords" in tim.tokenizer
    layers = tim(_s2())
    assert layers[-1].shape[0] == 2 and layers[-1].shape[1] >= 4 + 4  # S2L2A + imagined DEM + imagined coords

    gen = build_model("terramind_v1_tiny_generate", modalities=["S2L2A", "Coordinates"],
                      output_modalities=["LULC"], pretrained=True, temps=0.0)
    assert gen({"S2L2A": _s2(), "Coordinates": coords})["LULC"].shape == (2, 10, 32, 32)


def test_generation_outputs_coordinates(coords_hub):
    gen = build_model("terramind_v1_tiny_generate", modalities=["S2L2A"], output_modalities=["Coordinates"],
                      pretrained=True, temps=0.0)
    tokens, info = gen.generate_tokens({"S2L2A": _s2()}, seed=0)
    assert tokens["Coordinates"].ndim == 2 and tokens["Coordinates"].shape[0] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights rarely write a coordinate: NaN with a warning
        out = gen.decode_outputs(tokens, info)["Coordinates"]
        again = gen({"S2L2A": _s2()}, seed=0)["Coordinates"]  # greedy: reproducible
    assert len(out) == 2 and all(len(row) == 2 for row in out)
    assert str(again) == str(out)
