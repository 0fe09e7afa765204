"""catalog.py is the one table of official weights: every name parses to a row, every row's numbers build it."""
from __future__ import annotations

import pytest
import torch

from terramind_backend import build_model, catalog, hub
from terramind_backend.models.tokenizers import FAMILIES


def test_every_registry_name_parses_to_its_row_and_file():
    names = catalog.available_models()
    assert len(names) == len(set(names)) == 4 * 3 + 6 + 1
    for name in names:
        parsed = catalog.parse_model_name(name)
        assert parsed.name == name and name.startswith(parsed.weights.registry_name)
        assert hub.weights_file(name) == (parsed.weights.repo_id, parsed.weights.file)
    assert catalog.parse_model_name("terramind_v1_large_generate").size == "large"
    assert catalog.parse_model_name("terramind_v1_small_tim").variant == "_tim"


@pytest.mark.parametrize("name", ["terramind_v1_huge", "terramind_v1_tiny_foo", "terramind_v1_tokenizer_rgb", "", 3])
def test_unknown_names_are_refused_with_the_known_ones(name):
    with pytest.raises(ValueError, match="Available: terramind_v1_tiny, "):
        catalog.parse_model_name(name)
    assert catalog.backbone_name(name) is None


def test_backbone_name_filters_variants():
    assert catalog.backbone_name("terramind_v1_base_generate", variants=("", "_tim")) is None
    assert catalog.backbone_name("terramind_v1_tokenizer_dem") is None
    assert catalog.backbone_name("terramind_v1_base_tim", variants=("", "_tim")).size == "base"
    assert catalog.DEFAULT_MODEL in catalog.available_models()


@pytest.mark.parametrize("size", catalog.SIZES)
def test_each_size_row_builds_a_backbone_with_its_stated_parameter_count(size):
    row = catalog.BACKBONES[size]
    with torch.device("meta"):  # no memory, no init: only the shapes the row's numbers give
        model = build_model(row.registry_name, modalities=["S2L2A"])
    assert sum(p.numel() for p in model.parameters()) == row.parameters
    assert len(model.encoder) == row.encoder_depth and max(row.feature_blocks) == row.encoder_depth - 1


@pytest.mark.parametrize("key", list(catalog.TOKENIZERS))
def test_each_tokenizer_row_builds_its_family_with_its_channels(key):
    row = catalog.TOKENIZERS[key]
    with torch.device("meta"):
        model = build_model(row.registry_name)
    assert type(model) is FAMILIES[row.family]
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.in_channels == row.channels
    assert row.file.endswith(f"{row.key.upper()}.pt") and row.repo.endswith(row.key.upper())


def test_tokenizers_are_found_by_key_registry_name_or_modality():
    for row in catalog.TOKENIZERS.values():
        assert {catalog.find_tokenizer(n) for n in (row.key, row.registry_name, row.modality, row.key.upper())} == {row}
    with pytest.raises(ValueError, match="Known: s2l2a, s1rtc"):
        catalog.find_tokenizer("S2RGB")
