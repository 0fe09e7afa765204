"""The Hugging Face commit each official TerraMind 1.0 repository is pinned to.

``hub.py`` passes these commits as ``revision=`` to every download and cache lookup, so what a given
plugin version runs cannot change when a repository on the Hub does. ``scripts/pin_revisions.py`` fills
the table from the Hub (it is edited in place); ``scripts/package.sh --release`` refuses to build a
release while any entry is ``None``.

``None`` means "not pinned yet": this build then refuses to fetch or load that repository's weights
instead of silently following its ``main`` branch. Developers and tests may supply commits for unpinned
repositories in a ``terramind-dev-revisions.json`` file ({repo_id: commit}) at the top of the Hugging
Face cache folder (``scripts/fake_hub.sh`` writes one for the fake hub). A pinned entry always wins over
that file, so it has no effect on a release, where every entry is pinned.

Pure standard library: ``scripts/pin_revisions.py`` and ``scripts/package.sh`` read it without the
backend's dependencies.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Optional

PINNED_REVISIONS: Dict[str, Optional[str]] = {
    "ibm-esa-geospatial/TerraMind-1.0-tiny": None,
    "ibm-esa-geospatial/TerraMind-1.0-small": None,
    "ibm-esa-geospatial/TerraMind-1.0-base": None,
    "ibm-esa-geospatial/TerraMind-1.0-large": None,
    "ibm-esa-geospatial/TerraMind-1.0-Tokenizer-S2L2A": None,
    "ibm-esa-geospatial/TerraMind-1.0-Tokenizer-S1RTC": None,
    "ibm-esa-geospatial/TerraMind-1.0-Tokenizer-S1GRD": None,
    "ibm-esa-geospatial/TerraMind-1.0-Tokenizer-DEM": None,
    "ibm-esa-geospatial/TerraMind-1.0-Tokenizer-LULC": None,
    "ibm-esa-geospatial/TerraMind-1.0-Tokenizer-NDVI": None,
    "ibm-esa-geospatial/TerraMind-1.0-Tokenizer-Coords": None,
}

DEV_REVISIONS_FILE = "terramind-dev-revisions.json"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


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
