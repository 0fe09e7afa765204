"""Coordinates, TerraMind 1.0's sequence modality: (lon, lat) <-> WordPiece token ids, as TerraTorch 1.1.1.

A tile's centre ``[B, 2]`` (lon, lat in degrees, WGS 84) is snapped to the 0.25 degree grid
(``round(x * 4) / 4``, torch's half-to-even rounding), written as the text ``"lat=12.25 lon=-3.50 [EOS]"``
and tokenized with the HF ``tokenizers`` WordPiece tokenizer of
``ibm-esa-geospatial/TerraMind-1.0-Tokenizer-Coords`` (``config.json``, fetched through ``hub`` like the
weights) or, without ``pretrained``, the blank 7-token WordPiece TerraTorch uses for tests. Generated ids are
read back from their first two tokens (``"lat=… lon=…"``); anything else gives NaN with a warning.

- ``CoordsTokenizer.encode(coords)`` -> TerraTorch's ``{"tensor", "input_mask", "target_mask",
  "decoder_attention_mask"}`` dict; ``decode(ids)`` -> ``[[lon, lat], ...]``.
- ``generation_input(ids)``: the ids the encoder-decoder sees (cut after the first ``[EOS]``, TerraTorch's
  ``init_full_input_modality``).
- ``empty_target(batch, length)`` / ``merge_generated(prompt, generated)``: the sentinel bookkeeping of
  TerraTorch's autoregressive generation (``[S_1] … [S_2]`` targets, span merge, ``[PAD]`` right padding).
"""
from __future__ import annotations

import warnings
from typing import List, Optional

import torch
from torch import nn

from ..catalog import COORDS_TOKENIZER

__all__ = ["CoordsTokenizer", "build_coords_tokenizer", "blank_wordpiece", "generation_input",
           "PAD_ID", "EOS_ID", "S1_ID", "GRID_DEGREES"]

GRID_DEGREES = 0.25
# Ids TerraTorch's generation code hard-codes (both its blank tokenizer and the official file use them).
PAD_ID, EOS_ID, S1_ID = 0, 3, 5
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[SOS]", "[EOS]", "[S_0]", "[S_1]", "[S_2]")


def _require_tokenizers():
    try:
        import tokenizers
    except ImportError as exc:  # a declared dependency of the backend; say how to get it
        raise ImportError("Coordinates need the HF 'tokenizers' package: pip install tokenizers") from exc
    return tokenizers


def blank_wordpiece():
    """TerraTorch's untrained coords tokenizer: the seven special tokens, every coordinate piece [UNK]."""
    tk = _require_tokenizers()
    from tokenizers.decoders import WordPiece as WordPieceDecoder
    from tokenizers.models import WordPiece
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    tok = tk.Tokenizer(WordPiece(vocab, unk_token="[UNK]"))  # nosec B106: WordPiece's unknown-word marker
    tok.normalizer = BertNormalizer()
    tok.pre_tokenizer = BertPreTokenizer()
    tok.decoder = WordPieceDecoder()
    tok.add_tokens([tk.AddedToken(t, normalized=False, special=True) for t in SPECIAL_TOKENS])
    return tok


class CoordsTokenizer(nn.Module):
    """(lon, lat) <-> token ids (see the module docstring). ``text_tokenizer`` is the ``tokenizers.Tokenizer``."""

    def __init__(self, tokenizer_file: Optional[str] = None):
        super().__init__()
        tk = _require_tokenizers()
        self.text_tokenizer = tk.Tokenizer.from_file(str(tokenizer_file)) if tokenizer_file else blank_wordpiece()
        vocab = self.text_tokenizer.get_vocab()
        # sentinels as TerraTorch finds them: every token spelled "[S_<n>]"
        self.sentinel_ids = frozenset(v for k, v in vocab.items() if k.startswith("[S_"))
        pad = self.text_tokenizer.token_to_id("[PAD]")
        self.pad_id = PAD_ID if pad is None else pad

    @staticmethod
    def texts(coords: torch.Tensor) -> List[str]:
        """The text of each row, after snapping to the 0.25 degree grid (TerraTorch's format)."""
        if not torch.is_tensor(coords) or coords.ndim != 2 or coords.shape[1] != 2:
            shape = tuple(coords.shape) if torch.is_tensor(coords) else type(coords).__name__
            raise ValueError(f"Coordinates must be a tensor [batch, 2] of (lon, lat) degrees, got {shape}")
        if not torch.is_floating_point(coords):
            raise ValueError("Coordinates must be float (lon, lat) degrees; integer tensors are token ids")
        snapped = (coords * 4).round() / 4
        return [f"lat={row[1].item():.2f} lon={row[0].item():.2f} [EOS]" for row in snapped]

    def tokenize(self, coords: torch.Tensor) -> torch.Tensor:
        """Token ids [B, L] (int64) of (lon, lat) rows."""
        texts = self.texts(coords)
        ids = [e.ids for e in self.text_tokenizer.encode_batch(texts, add_special_tokens=True)]
        if len({len(i) for i in ids}) > 1:
            raise ValueError("These coordinates tokenize to different lengths in one batch (the untrained "
                             "tokenizer of pretrained=False splits signs and digits); use the official tokenizer "
                             "(pretrained=True) or run the rows one by one")
        return torch.tensor(ids, dtype=torch.long, device=coords.device)

    def encode(self, coords: torch.Tensor, *args, **kwargs) -> dict:
        """TerraTorch's modality dict for (lon, lat) rows: ids plus all-valid input masks."""
        ids = self.tokenize(coords)
        zeros = torch.zeros_like(ids, dtype=torch.bool)
        return {"tensor": ids, "input_mask": zeros, "target_mask": torch.ones_like(zeros),
                "decoder_attention_mask": zeros.clone()}

    def decode(self, ids: torch.Tensor) -> List[List[float]]:
        """``[[lon, lat], ...]`` from generated ids [B, L] (their first two tokens); NaN + warning otherwise."""
        coords = []
        for row in ids.tolist():
            text = self.text_tokenizer.decode(row[:2], skip_special_tokens=False)
            try:
                lat, lon = text.split(" ")
                coords.append([float(lon.strip("lon=")), float(lat.strip("lat="))])
            except ValueError as exc:
                warnings.warn(f"The generated text {text!r} is not a coordinate ({exc}); returning NaN",
                              stacklevel=2)
                coords.append([float("nan"), float("nan")])
        return coords

    # ------------------------------------------------------------ generation bookkeeping
    def empty_target(self, batch: int, length: int, device) -> torch.Tensor:
        """Ids [B, length] of an empty sequence target: ``[S_1] [S_1] 0 … 0 [S_2]``; position 0 is the
        prompt, the rest are targets."""
        ids = torch.zeros(batch, length, dtype=torch.long, device=device)
        ids[:, :2] = S1_ID
        ids[:, -1] = S1_ID + 1
        return ids

    def merge_generated(self, generated: torch.Tensor) -> torch.Tensor:
        """Ids [B, L'] after generation: the prompt's ``[S_1]`` replaced by what was generated after the first
        ``[S_1]`` up to the next sentinel, rows right-padded with ``[PAD]`` (TerraTorch's span merge)."""
        rows = []
        for seq in generated.tolist():
            span, current = [], None
            for token in seq:
                if token in self.sentinel_ids:
                    current = token
                elif current == S1_ID:
                    span.append(token)
            rows.append(span)
        width = max(len(r) for r in rows)
        merged = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            merged[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        return merged.to(generated.device)


def generation_input(ids: torch.Tensor) -> torch.Tensor:
    """The coords ids the encoder-decoder reads: up to the first ``[EOS]`` (later ones are masked out by
    TerraTorch's ``init_full_input_modality``, which is the same as cutting them); no ``[EOS]`` at all
    keeps a lone ``[EOS]``, with TerraTorch's warning."""
    hits = (ids == EOS_ID).nonzero()
    if hits.numel() == 0:
        warnings.warn("Cannot find the [EOS] token in the coords input; ignoring the input (as TerraTorch)",
                      stacklevel=2)
        return torch.full((ids.shape[0], 1), EOS_ID, dtype=ids.dtype, device=ids.device)
    return ids[:, : int(hits[0, 1]) + 1]


def build_coords_tokenizer(pretrained: bool = False, tokenizer_file: Optional[str] = None,
                           download_progress=None) -> CoordsTokenizer:
    """The coords tokenizer: ``tokenizer_file`` if given, else the official ``config.json`` through the HF cache
    when ``pretrained`` (``hub.resolve_weights``: HF_HOME/HF_HUB_CACHE/HF_HUB_OFFLINE/HF_TOKEN apply), else the
    blank WordPiece."""
    _require_tokenizers()
    if tokenizer_file is None and pretrained:
        from .. import hub

        official = COORDS_TOKENIZER  # the catalog row: repository, config.json, pinned commit
        tokenizer_file = hub.resolve_weights(official.repo_id, official.file, progress=download_progress)
    return CoordsTokenizer(tokenizer_file)
