"""Publishing a job's finished files all-or-nothing: a two-phase rename.

Writers finish every output under hidden temp names beside its destination (phase 1, `writer.py`,
`geopackage.py`, `points.py`) and hand their moves — (temp file, destination) pairs, or (None, destination)
for a stale sidecar that must go — to `publish`. Phase 2 first moves every existing destination aside to a
hidden backup in the same folder (`leftovers.backup_path`), then renames every new file in. If any step fails
(a folder turned read-only, a full disk, a file open in another program on Windows), what was done is undone
in reverse — the new files put in are removed, the backups renamed back — and the original error is raised,
so the user keeps every old output or gets every new one. Backups are deleted once all is in place.

Renames within one folder are atomic; a set of them is not: a crash or power cut between two renames cannot
be undone here. The next job writing into that folder settles what is left (`leftovers.sweep_stale`): an
empty destination gets its backup back, a backup whose destination holds a file is removed. Cleanup never
raises: a failed undo or backup removal is logged and left to that sweep, the job's own error stays the one
raised.
"""
from __future__ import annotations

import logging
import os
from typing import Dict, Iterable, List, Optional, Tuple

from .leftovers import backup_path, discard

log = logging.getLogger(__name__)

Move = Tuple[Optional[str], str]  # (finished temp file or None, destination)


def publish(moves: Iterable[Move]) -> None:
    """Put every finished temp file at its destination (and make the None ones' destinations go), all or
    none. After a failure, the temp files not yet renamed in are left for the writers' ``abort``."""
    moves = list(moves)
    backups: Dict[str, str] = {}       # destination → its backup, noted before the rename (undo checks the disk)
    placed: List[Move] = []            # new files, noted before their rename
    try:
        for _, dst in moves:
            if dst not in backups and os.path.lexists(dst):
                backups[dst] = backup_path(dst)
                _rename(dst, backups[dst], dst)
        for new, dst in moves:
            if new is not None:
                placed.append((new, dst))
                _rename(new, dst, dst)
    except BaseException:
        _undo(placed, backups)
        raise
    for backup in backups.values():
        discard(backup)


def _rename(src: str, dst: str, destination: str) -> None:
    try:
        os.replace(src, dst)
    except PermissionError as exc:
        if os.name != "nt":  # POSIX renames over an open file: the folder refused it (failures.explain)
            raise
        # Windows: the old file is open (e.g. still a layer in QGIS)
        raise RuntimeError(f"Cannot replace {destination}: {exc.strerror}. Is it open in another program (a QGIS "
                           f"layer)? Remove that layer or choose another file name.") from exc


def _undo(placed: List[Move], backups: Dict[str, str]) -> None:
    """Reverse a partial publish from what is on disk: a new file is in when its temp name is gone."""
    settled = set()
    for new, dst in reversed(placed):
        if dst in settled or os.path.lexists(new) or not os.path.lexists(dst):
            continue
        settled.add(dst)
        backup = backups.get(dst)
        if backup is None or not os.path.lexists(backup):
            discard(dst)                 # nothing was there before this job
        elif not _restore(backup, dst):  # one rename over the new file, so the destination is never empty;
            discard(dst)                 # if refused, an empty destination makes the next sweep restore it
    for dst, backup in reversed(list(backups.items())):
        if dst not in settled and os.path.lexists(backup):
            _restore(backup, dst)


def _restore(backup: str, dst: str) -> bool:
    try:
        os.replace(backup, dst)
        return True
    except OSError as exc:  # the next job's sweep restores it (leftovers.sweep_stale)
        log.warning("could not restore %s from %s: %s", dst, backup, exc.strerror or exc)
        return False
