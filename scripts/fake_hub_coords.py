"""Add the Coordinates modality to a fake official HF cache (scripts/fake_hub.sh runs it after the shared tool).

The shared tool writes the backbone file and the six image tokenizers; Coordinates need two more things,
both in the official layout so tests load them through the real ``pretrained=True`` code paths:

1. ``ibm-esa-geospatial/TerraMind-1.0-Tokenizer-Coords/config.json``: a HF ``tokenizers`` WordPiece file
   with TerraTorch's special ids ([PAD] 0 … [S_2] 6) and one token per 0.25 degree grid value,
   ``lat=-90.00`` … ``lat=90.00`` and ``lon=-180.00`` … ``lon=180.00`` (plus ``-0.00``), added as whole
   tokens so ``"lat=12.25 lon=-3.50 [EOS]"`` is three ids, as TerraMind's adapted WordPiece has it.
2. The coords embeddings in ``TerraMind_v1_<size>.pt`` (``encoder_embeddings.coords.*`` and
   ``decoder_embeddings.coords.*``, names and shapes asked from TerraTorch itself), random like the rest;
   the tied ``to_logits``/``token_emb`` and the shared ``mod_emb`` hold one value, as in a real checkpoint.

Idempotent: each part is written only when missing; the checkpoint is replaced atomically (never edited in
place, so hard-linked copies of the cache are left alone). Run with the TerraTorch venv's python:
  python scripts/fake_hub_coords.py CACHE_DIR [--size tiny] [--seed 15]
"""
import argparse
import glob
import os

import torch

REPO = "ibm-esa-geospatial/TerraMind-1.0-Tokenizer-Coords"
SPECIAL = ["[PAD]", "[UNK]", "[SOS]", "[EOS]", "[S_0]", "[S_1]", "[S_2]"]


def grid_tokens():
    def values(limit):
        steps = range(-limit * 4, limit * 4 + 1)
        return [f"{i / 4:.2f}" for i in steps] + ["-0.00"]
    return [f"lat={v}" for v in values(90)] + [f"lon={v}" for v in values(180)]


def coords_tokenizer():
    from tokenizers import AddedToken, Tokenizer
    from tokenizers.decoders import WordPiece as WordPieceDecoder
    from tokenizers.models import WordPiece
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    words = SPECIAL + grid_tokens()
    tok = Tokenizer(WordPiece({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.normalizer = BertNormalizer()
    tok.pre_tokenizer = BertPreTokenizer()
    tok.decoder = WordPieceDecoder()
    tok.add_tokens([AddedToken(w, normalized=False, special=True) for w in SPECIAL])
    tok.add_tokens([AddedToken(w, normalized=False, special=False) for w in grid_tokens()])
    return tok


def snapshot_dir(cache, repo, filename):
    import hashlib
    folder = os.path.join(cache, "models--" + repo.replace("/", "--"))
    rev = hashlib.sha1((repo + filename).encode()).hexdigest()
    os.makedirs(os.path.join(folder, "snapshots", rev), exist_ok=True)
    os.makedirs(os.path.join(folder, "refs"), exist_ok=True)
    with open(os.path.join(folder, "refs", "main"), "w") as f:
        f.write(rev)
    return os.path.join(folder, "snapshots", rev)


def write_tokenizer(cache):
    path = os.path.join(snapshot_dir(cache, REPO, "config.json"), "config.json")
    if os.path.isfile(path):
        return
    tmp = path + ".tmp"
    coords_tokenizer().save(tmp)
    os.replace(tmp, path)
    print(f"{REPO}/config.json written")


def coords_keys(size):
    """{key: tensor} of the coords embeddings in the encoder-decoder, as TerraTorch builds them."""
    from terratorch.registry import FULL_MODEL_REGISTRY

    g = FULL_MODEL_REGISTRY.build(f"terramind_v1_{size}_generate", modalities=["S2L2A", "coords"],
                                  output_modalities=["coords"], pretrained=False)
    prefix = "sampler.model."
    return {k[len(prefix):]: v for k, v in g.state_dict().items()
            if k.startswith(prefix) and ".coords." in k}


def add_coords_weights(cache, size, seed):
    files = glob.glob(os.path.join(cache, f"models--ibm-esa-geospatial--TerraMind-1.0-{size}", "snapshots", "*",
                                   f"TerraMind_v1_{size}.pt"))
    if not files:
        raise SystemExit(f"no TerraMind_v1_{size}.pt under {cache}: run the shared fake hub tool first")
    path = os.path.realpath(files[0])
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "encoder_embeddings.coords.token_emb.weight" in state:
        return
    gen = torch.Generator().manual_seed(seed)
    new = {}
    for key, value in sorted(coords_keys(size).items()):
        if key == "decoder_embeddings.coords.to_logits.weight":
            continue  # tied to token_emb below
        if key == "decoder_embeddings.coords.mod_emb":
            continue  # shared with the encoder's
        new[key] = 0.05 * torch.randn(value.shape, generator=gen)
    new["decoder_embeddings.coords.to_logits.weight"] = new["decoder_embeddings.coords.token_emb.weight"]
    new["decoder_embeddings.coords.mod_emb"] = new["encoder_embeddings.coords.mod_emb"]
    state.update(new)
    tmp = path + ".tmp"
    torch.save(dict(sorted(state.items())), tmp)
    os.replace(tmp, path)
    print(f"TerraMind_v1_{size}.pt: {len(new)} coords tensors added")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cache")
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--seed", type=int, default=15)
    a = ap.parse_args()
    write_tokenizer(a.cache)
    add_coords_weights(a.cache, a.size, a.seed)


if __name__ == "__main__":
    main()
