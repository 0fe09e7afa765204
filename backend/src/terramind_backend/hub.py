"""Where TerraMind weights come from: the Hugging Face Hub cache, a local file, or a clear error.

Every official file is fetched through ``huggingface_hub`` so the user's cache, ``HF_HOME`` /
``HF_HUB_CACHE``, ``HF_HUB_OFFLINE`` and ``HF_TOKEN`` behave as in every other HF tool, and always at
the commit ``catalog.py`` pins for its repository (downloads and cache lookups alike); which file a model
name loads comes from the same table.
Checkpoints are read as tensors only (safetensors or ``torch.load(weights_only=True)``).
"""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Optional

from . import catalog
from .catalog import RevisionNotPinned, pinned_revision

if TYPE_CHECKING:  # annotations only: importing hub must not load torch
    import torch

# progress(done_bytes, total_bytes, label) - the job engine forwards it as protocol events.
ProgressCallback = Callable[[int, Optional[int], str], None]


class WeightsNotAvailable(RuntimeError):
    """The weights are neither cached nor downloadable (offline, no network, or no access)."""


def weights_file(name: str) -> tuple:
    """(repo_id, filename) of the official file behind a registry name (any backbone variant)."""
    weights = catalog.parse_model_name(name).weights  # ValueError naming the known models
    return weights.repo_id, weights.file


def offline_mode() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE)


def _progress_tqdm(progress: ProgressCallback, label: str):
    """A tqdm subclass that reports byte progress to ``progress`` (huggingface_hub drives it)."""
    from tqdm.auto import tqdm

    class _Reporter(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True  # never print in the backend process: stdout carries the protocol
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            super().update(n)
            progress(int(self.n), int(self.total) if self.total else None, label)

    return _Reporter


def revision_for(repo_id: str) -> str:
    """The pinned commit of an official repository, or ``WeightsNotAvailable`` saying why there is none."""
    try:
        return pinned_revision(repo_id, hub_cache_dir())
    except RevisionNotPinned as exc:
        raise WeightsNotAvailable(str(exc)) from None


def repos_without_commit() -> List[str]:
    """Official repositories whose weights this build will not fetch: no pin and no development override."""
    missing = []
    for repo_id in sorted(catalog.PINNED_REVISIONS):
        try:
            pinned_revision(repo_id, hub_cache_dir())
        except RevisionNotPinned:
            missing.append(repo_id)
    return missing


def cached_commits(repo_id: str, filename: str) -> List[str]:
    """Commits at which the HF cache holds ``repo_id/filename`` (snapshot folders that contain it)."""
    snapshots = hub_cache_dir() / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    if not snapshots.is_dir():
        return []
    return sorted(s.name for s in snapshots.iterdir() if (s / filename).is_file())


def resolve_weights(repo_id: str, filename: str, *, progress: Optional[ProgressCallback] = None,
                    token: Optional[str] = None, offline: Optional[bool] = None) -> Path:
    """Local path of ``repo_id/filename`` at its pinned commit, downloading it into the HF cache when allowed."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    offline = offline_mode() if offline is None else offline
    commit = revision_for(repo_id)
    kwargs = dict(token=token or os.environ.get("HF_TOKEN") or None, local_files_only=offline,
                  cache_dir=os.environ.get("HF_HUB_CACHE") or None)
    if progress is not None and "tqdm_class" in inspect.signature(hf_hub_download).parameters:
        kwargs["tqdm_class"] = _progress_tqdm(progress, filename)
    try:
        path = Path(hf_hub_download(repo_id, filename, revision=commit, **kwargs))
    except LocalEntryNotFoundError as exc:
        how = ("Offline mode is on (HF_HUB_OFFLINE=1 or the plugin's offline setting): turn it off once "
               "to download, or copy the file into the cache" if offline else
               "The Hub could not be reached: check the network/proxy, or fetch it on another machine")
        other = cached_commits(repo_id, filename)
        held = (f" The cache holds it only at other commits ({', '.join(c[:12] for c in other)}); this "
                f"version of TerraMind for QGIS uses commit {commit[:12]}." if other else "")
        raise WeightsNotAvailable(
            f"TerraMind weights {repo_id}/{filename} at commit {commit} are not in the Hugging Face cache "
            f"({hub_cache_dir()}).{held} {how} with: huggingface-cli download {repo_id} {filename} "
            f"--revision {commit}") from exc
    except Exception as exc:  # gated/401/404 and network errors from huggingface_hub
        if type(exc).__name__ in ("GatedRepoError", "RepositoryNotFoundError", "EntryNotFoundError",
                                  "HfHubHTTPError", "ConnectionError"):
            raise WeightsNotAvailable(f"Could not fetch {repo_id}/{filename}: {exc}") from exc
        raise
    if path.parent.name != commit:  # the snapshot folder names the commit the file came from
        raise WeightsNotAvailable(f"The Hugging Face cache returned {path} for {repo_id}/{filename}, "
                                  f"not the pinned commit {commit}: clear that cache entry and retry.")
    return path


class CheckpointLoadError(ValueError):
    """A weights file that cannot be read as tensors; the message names the file and what to do."""


def load_checkpoint(path) -> Dict[str, "torch.Tensor"]:
    """Tensors of a checkpoint file; never unpickles arbitrary objects."""
    import pickle  # nosec B403: only to catch UnpicklingError; files load with torch.load(weights_only=True)

    import torch

    from .engine.errors import JobCancelled  # a cancel landing inside a load stays a cancel

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except JobCancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for damaged files
            raise CheckpointLoadError(
                f"{path} is not a valid .safetensors file (damaged, truncated or another format: {exc}). "
                f"Download or export it again; for the official weights, delete it from the Hugging Face cache "
                f"so it is fetched anew.") from None
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" not in str(exc).lower():  # objects (globals); a damaged file fails otherwise
            raise CheckpointLoadError(f"{path} is not a readable PyTorch checkpoint (damaged, truncated or another "
                                      f"format).") from None
        raise CheckpointLoadError(
            f"{path.name} cannot be loaded safely: it holds Python objects besides tensors, and this backend "
            f"never unpickles arbitrary objects. In the environment that made it, save only the model's "
            f"tensors (torch.save(model.state_dict(), 'weights.pt')) and use that file.") from None
    except JobCancelled:
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises many types for damaged files
        raise CheckpointLoadError(f"{path} is not a readable PyTorch checkpoint (damaged, truncated or another "
                                  f"format: {str(exc).splitlines()[0][:200]}).") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    return state


def official_state_dict(name: str, *, progress: Optional[ProgressCallback] = None,
                        token: Optional[str] = None) -> Dict[str, "torch.Tensor"]:
    repo_id, filename = weights_file(name)
    return load_checkpoint(resolve_weights(repo_id, filename, progress=progress, token=token))


@dataclass
class CachedFile:
    name: str
    repo_id: str
    filename: str
    path: Path
    size_bytes: int
    revision: str


def cached_official_weights() -> list:
    """Which official TerraMind files the HF cache holds at their pinned commits (for `terramind doctor`).
    A file cached only at another commit, or of an unpinned repository, is not usable and not listed."""
    from huggingface_hub import try_to_load_from_cache

    found = []
    for weights in sorted(catalog.all_weights(), key=lambda w: w.registry_name):
        name, repo_id, filename = weights.registry_name, weights.repo_id, weights.file
        try:
            commit = pinned_revision(repo_id, hub_cache_dir())
        except RevisionNotPinned:
            continue
        hit = try_to_load_from_cache(repo_id, filename, cache_dir=os.environ.get("HF_HUB_CACHE") or None,
                                     revision=commit)
        if isinstance(hit, str) and os.path.isfile(hit):
            found.append(CachedFile(name, repo_id, filename, Path(hit), os.path.getsize(hit), commit))
    return found
