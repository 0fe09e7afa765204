#!/usr/bin/env python3
"""Pin every official TerraMind 1.0 repository to a Hugging Face commit in backend/.../catalog.py.

  .venv-backend/bin/python scripts/pin_revisions.py            # fill the unpinned entries from the Hub
  .venv-backend/bin/python scripts/pin_revisions.py --update   # also move pinned entries to the current head
  python3 scripts/pin_revisions.py --check                     # exit 1 while any entry is unpinned (no network)

Filling asks the Hub for the commit at the head of each repository's main branch and checks that the
commit holds the official checkpoint file before writing it. Repositories the Hub does not answer for
(offline, gated without a token, ...) are reported and left as they are. Review the diff, then commit it.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "backend" / "src" / "terramind_backend" / "catalog.py"


def load_table():
    """catalog.py from its file (pure standard library; works without the backend installed)."""
    spec = importlib.util.spec_from_file_location("_catalog", TABLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check() -> int:
    table = load_table()
    bad = {repo: commit for repo, commit in table.PINNED_REVISIONS.items()
           if commit is not None and not table.is_commit(commit)}
    for repo, commit in bad.items():
        print(f"pin_revisions: {repo} is pinned to {commit!r}, which is not a 40-character commit id", file=sys.stderr)
    missing = table.unpinned_repos()
    for repo in missing:
        print(f"pin_revisions: {repo} is not pinned to a commit", file=sys.stderr)
    if missing or bad:
        print(f"pin_revisions: {len(missing) + len(bad)} of {len(table.PINNED_REVISIONS)} official repositories "
              f"lack a valid pin in {TABLE.relative_to(ROOT)}; run scripts/pin_revisions.py where the Hub is "
              f"reachable", file=sys.stderr)
        return 1
    print(f"pin_revisions: all {len(table.PINNED_REVISIONS)} official repositories are pinned")
    return 0


def head_commit(api, repo_id: str, filename: str) -> str:
    info = api.model_info(repo_id, revision="main")
    names = {s.rfilename for s in (info.siblings or [])}
    if filename not in names:
        raise LookupError(f"commit {info.sha} has no {filename}")
    return info.sha


def fill(update: bool) -> int:
    from huggingface_hub import HfApi

    table = load_table()
    files = {w.repo_id: w.file for w in table.all_weights()}
    short = {w.repo_id: w.repo for w in table.all_weights()}
    api = HfApi(token=os.environ.get("HF_TOKEN") or None)
    text = TABLE.read_text(encoding="utf-8")
    failed = 0
    for repo, current in table.PINNED_REVISIONS.items():
        if current is not None and not update:
            print(f"{repo}: kept {current}")
            continue
        try:
            commit = head_commit(api, repo, files[repo])
        except Exception as exc:  # noqa: BLE001 - offline, gated, renamed: report and go on
            print(f"{repo}: NOT pinned ({type(exc).__name__}: {exc})", file=sys.stderr)
            failed += 1
            continue
        if not table.is_commit(commit):
            print(f"{repo}: NOT pinned (the Hub answered {commit!r}, not a commit id)", file=sys.stderr)
            failed += 1
            continue
        row = re.compile(rf'(\brepo="{re.escape(short[repo])}", revision=)(None|"[0-9a-f]{{40}}")')
        text, n = row.subn(rf'\g<1>"{commit}"', text)
        if n != 1:
            raise SystemExit(f"pin_revisions: could not find the row of {repo} in {TABLE}")
        print(f"{repo}: {current or 'unpinned'} -> {commit}")
    tmp = TABLE.with_suffix(".py.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, TABLE)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report; exit 1 while any repository is unpinned")
    parser.add_argument("--update", action="store_true", help="re-pin already pinned repositories to the head too")
    args = parser.parse_args()
    return check() if args.check else fill(args.update)


if __name__ == "__main__":
    sys.exit(main())
