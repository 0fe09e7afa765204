"""Every official TerraMind 1.0 file in one table: where it lives, the commit it is pinned to, what it holds.

Like timm's pretrained configs, one row per weights file carries everything the code needs to know about it:
the Hugging Face repository and file, the pinned commit, and the architecture numbers the file was trained
with (a backbone's transformer sizes, a tokenizer's channels and FSQ levels). ``hub.py`` downloads and looks up
files through it, ``models/`` builds modules from its numbers, ``engine/jobspec.py`` and ``finetune/`` check
model names against it, ``engine/time_estimate.py`` scales costs by its parameter counts.

Pinned commits: ``hub.py`` passes a row's ``revision`` as ``revision=`` to every download and cache lookup,
so what a given plugin version runs cannot change when a repository on the Hub does.
``scripts/pin_revisions.py`` fills them from the Hub (it edits the ``repo=..., revision=...`` lines in place);
``scripts/package.sh --release`` refuses to build a release while any is ``None``. ``None`` means "not pinned
yet": this build then refuses to fetch or load that repository's weights instead of silently following its
``main`` branch. Developers and tests may supply commits for unpinned repositories in a
``terramind-dev-revisions.json`` file ({repo_id: commit}) at the top of the Hugging Face cache folder
(``scripts/fake_hub.sh`` writes one for the fake hub); a pinned row always wins over that file, so it has no
effect on a release.

Pure standard library: ``scripts/pin_revisions.py``, ``scripts/package.sh`` and the plugin's tests load this
file without the backend's dependencies.
"""
# No "from __future__ import annotations": dataclasses then need no sys.modules entry, so this file also
# loads on its own with importlib (scripts/pin_revisions.py, tests/conftest.py).
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

ORG = "ibm-esa-geospatial"


@dataclass(frozen=True, kw_only=True)
class Weights:
    """One official file: ``ORG/repo`` on the Hub, ``file`` in it, pinned at ``revision``."""
    repo: str
    file: str
    revision: Optional[str]

    @property
    def repo_id(self) -> str:
        return f"{ORG}/{self.repo}"


@dataclass(frozen=True, kw_only=True)
class Backbone(Weights):
    """``TerraMind_v1_<size>.pt``: the encoder-decoder; head dim 64, LayerNorm eps 1e-6 in every size."""
    size: str
    dim: int
    encoder_depth: int
    decoder_depth: int
    num_heads: int
    gated_mlp: bool          # SwiGLU (SiLU) MLP; otherwise a plain GELU MLP
    bias: bool               # qkv/proj/MLP biases
    parameters: int          # backbone parameters with S2L2A (../shared/reference/terramind-facts.md 1.4)
    feature_blocks: Tuple[int, ...]  # blocks a segmentation decoder reads (TerraTorch's TerraMind configs)

    @property
    def registry_name(self) -> str:
        return f"terramind_v1_{self.size}"


@dataclass(frozen=True, kw_only=True)
class Tokenizer(Weights):
    """``TerraMind_Tokenizer_<KEY>.pt``: an image tokenizer (DiVAE: diffusion decoder; VQVAE: ViT decoder)."""
    key: str                 # TerraTorch's short key
    modality: str            # canonical modality name
    family: str              # "divae" or "vqvae" (TerraTorch's model_type)
    channels: int            # input channels (LULC: number of classes)
    levels: str              # FSQ levels

    @property
    def registry_name(self) -> str:
        return f"terramind_v1_tokenizer_{self.key}"


@dataclass(frozen=True, kw_only=True)
class TextTokenizer(Weights):
    """The Coordinates modality's WordPiece tokenizer: a HF ``tokenizers`` JSON, not weights."""

    @property
    def registry_name(self) -> str:
        return "terramind_v1_coords_tokenizer"


BACKBONES: Dict[str, Backbone] = {b.size: b for b in (
    Backbone(size="tiny", dim=192, encoder_depth=12, decoder_depth=4, num_heads=3, gated_mlp=False, bias=True,
             parameters=5_923_968, feature_blocks=(2, 5, 8, 11), file="TerraMind_v1_tiny.pt",
             repo="TerraMind-1.0-tiny", revision=None),
    Backbone(size="small", dim=384, encoder_depth=12, decoder_depth=6, num_heads=6, gated_mlp=False, bias=True,
             parameters=22_464_768, feature_blocks=(2, 5, 8, 11), file="TerraMind_v1_small.pt",
             repo="TerraMind-1.0-small", revision=None),
    Backbone(size="base", dim=768, encoder_depth=12, decoder_depth=12, num_heads=12, gated_mlp=True, bias=False,
             parameters=87_313_920, feature_blocks=(2, 5, 8, 11), file="TerraMind_v1_base.pt",
             repo="TerraMind-1.0-base", revision=None),
    Backbone(size="large", dim=1024, encoder_depth=24, decoder_depth=24, num_heads=16, gated_mlp=True, bias=False,
             parameters=305_137_664, feature_blocks=(5, 11, 17, 23), file="TerraMind_v1_large.pt",
             repo="TerraMind-1.0-large", revision=None),
)}

TOKENIZERS: Dict[str, Tokenizer] = {t.key: t for t in (
    Tokenizer(key="s2l2a", modality="S2L2A", family="divae", channels=12, levels="8-8-8-6-5",
              file="TerraMind_Tokenizer_S2L2A.pt", repo="TerraMind-1.0-Tokenizer-S2L2A", revision=None),
    Tokenizer(key="s1rtc", modality="S1RTC", family="divae", channels=2, levels="8-8-8-6-5",
              file="TerraMind_Tokenizer_S1RTC.pt", repo="TerraMind-1.0-Tokenizer-S1RTC", revision=None),
    Tokenizer(key="s1grd", modality="S1GRD", family="divae", channels=2, levels="8-8-8-6-5",
              file="TerraMind_Tokenizer_S1GRD.pt", repo="TerraMind-1.0-Tokenizer-S1GRD", revision=None),
    Tokenizer(key="dem", modality="DEM", family="divae", channels=1, levels="8-8-8-6-5",
              file="TerraMind_Tokenizer_DEM.pt", repo="TerraMind-1.0-Tokenizer-DEM", revision=None),
    Tokenizer(key="lulc", modality="LULC", family="vqvae", channels=10, levels="7-5-5-5-5",
              file="TerraMind_Tokenizer_LULC.pt", repo="TerraMind-1.0-Tokenizer-LULC", revision=None),
    Tokenizer(key="ndvi", modality="NDVI", family="divae", channels=1, levels="8-8-8-6-5",
              file="TerraMind_Tokenizer_NDVI.pt", repo="TerraMind-1.0-Tokenizer-NDVI", revision=None),
)}

COORDS_TOKENIZER = TextTokenizer(file="config.json", repo="TerraMind-1.0-Tokenizer-Coords", revision=None)

SIZES: Tuple[str, ...] = tuple(BACKBONES)
DEFAULT_MODEL = BACKBONES["tiny"].registry_name   # small enough for any CPU; the default of every front door
BACKBONE_VARIANTS = ("", "_tim", "_generate")       # the same weights as a backbone, TiM backbone, generator

AnyWeights = Union[Backbone, Tokenizer, TextTokenizer]


def all_weights() -> Iterator[AnyWeights]:
    yield from BACKBONES.values()
    yield from TOKENIZERS.values()
    yield COORDS_TOKENIZER


@dataclass(frozen=True)
class ModelName:
    """A TerraTorch registry name taken apart: the weights it loads and, for backbones, its variant."""
    name: str
    weights: AnyWeights
    variant: str = ""        # "", "_tim" or "_generate" (backbones only)

    @property
    def size(self) -> Optional[str]:
        return self.weights.size if isinstance(self.weights, Backbone) else None


def find_tokenizer(name: object) -> Tokenizer:
    """A tokenizer's row by short key, registry name or modality name (case-insensitive)."""
    key = str(name).strip().lower()
    for row in TOKENIZERS.values():
        if key in (row.key, row.registry_name, row.modality.lower()):
            return row
    raise ValueError(f"Unknown TerraMind 1.0 tokenizer {name!r}. Known: {', '.join(TOKENIZERS)}")


_BACKBONE_NAME = re.compile(r"^terramind_v1_(?P<size>[a-z]+)(?P<variant>_tim|_generate)?$")


def available_models() -> List[str]:
    """Every registry name (TerraTorch 1.1.1's) this backend builds."""
    return ([b.registry_name + v for b in BACKBONES.values() for v in BACKBONE_VARIANTS]
            + [t.registry_name for t in TOKENIZERS.values()] + [COORDS_TOKENIZER.registry_name])


def parse_model_name(name: object) -> ModelName:
    """``terramind_v1_tiny_tim`` -> ModelName(weights=BACKBONES['tiny'], variant='_tim'); ValueError if unknown."""
    text = str(name).strip()
    for weights in [*TOKENIZERS.values(), COORDS_TOKENIZER]:
        if text == weights.registry_name:
            return ModelName(text, weights)
    match = _BACKBONE_NAME.match(text)
    if match and match["size"] in BACKBONES:
        return ModelName(text, BACKBONES[match["size"]], match["variant"] or "")
    raise ValueError(f"Unknown TerraMind model {name!r}. Available: {', '.join(available_models())}")


def backbone_name(name: object, variants: Tuple[str, ...] = BACKBONE_VARIANTS) -> Optional[ModelName]:
    """The parsed name when it is a backbone with one of ``variants``; None otherwise (for checks with own messages)."""
    try:
        parsed = parse_model_name(name)
    except ValueError:
        return None
    return parsed if isinstance(parsed.weights, Backbone) and parsed.variant in variants else None


def backbone_names_hint(variants: Tuple[str, ...] = ("",)) -> str:
    """'terramind_v1_tiny, terramind_v1_small, …' for error messages."""
    return ", ".join(b.registry_name + v for v in variants for b in BACKBONES.values())


# ---------------------------------------------------------------------------------------------- pinned commits
DEV_REVISIONS_FILE = "terramind-dev-revisions.json"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")

# {repo_id: pinned commit or None}: a view of the rows above (tests replace it to simulate other pins).
PINNED_REVISIONS: Dict[str, Optional[str]] = {w.repo_id: w.revision for w in all_weights()}


class RevisionNotPinned(LookupError):
    """An official repository has no pinned commit in this build (and no development override)."""


def is_commit(revision: object) -> bool:
    """A full 40-hex Git commit id: the only kind of revision that cannot move."""
    return isinstance(revision, str) and bool(_COMMIT.match(revision))


def unpinned_repos() -> List[str]:
    """Official repositories this build has no commit for (a release needs none)."""
    return [repo for repo, commit in PINNED_REVISIONS.items() if commit is None]


def _dev_revisions(cache_dir: Path) -> Dict[str, str]:
    path = cache_dir / DEV_REVISIONS_FILE
    if not path.is_file():
        return {}
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RevisionNotPinned(f"{path} is not a readable JSON object of repo_id: commit ({exc})") from None
    if not isinstance(table, dict) or not all(is_commit(c) for c in table.values()):
        raise RevisionNotPinned(f"{path} must map repository ids to full 40-character commit ids")
    return table


def pinned_revision(repo_id: str, cache_dir: Path) -> str:
    """The commit ``repo_id`` is fetched and looked up at; ``RevisionNotPinned`` when there is none."""
    if repo_id not in PINNED_REVISIONS:
        raise RevisionNotPinned(f"{repo_id} is not an official TerraMind 1.0 repository")
    commit = PINNED_REVISIONS[repo_id] or _dev_revisions(cache_dir).get(repo_id)
    if commit is None:
        raise RevisionNotPinned(
            f"This build of TerraMind for QGIS has no pinned commit for {repo_id}, so it will not download "
            f"or load its weights (it never follows a repository's moving 'main' branch). Install a released "
            f"version, or, in a development checkout, run scripts/pin_revisions.py where the Hub is reachable "
            f"(or list commits in {cache_dir / DEV_REVISIONS_FILE}).")
    return commit
