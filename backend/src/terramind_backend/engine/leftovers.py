"""Hidden temporary files beside an output: how they are named, and sweeping those of dead runs.

An output is written as ``.<name>.<tag>.part.tif`` (then ``.cog.tif``, ``.aux.xml``, ``.qml``; a GeoPackage
``.part.gpkg``) in the
destination folder and renamed into place at the end. ``tag`` is the writing process's id in 8 hex
digits, so a later job can tell whose a leftover is: a run killed with SIGKILL (or a power cut) cannot
clean up after itself, and the next job writing the same output removes what it left — files of this
process, or of a process that no longer runs and belonged to this user, or any older than a day (a
process id can be reused). Files of a live process writing the same output are left alone.

Publishing (`publish.py`) moves an existing destination aside to ``.<name>.<tag>.backup`` before the new file
goes in, and deletes it once every output is in place. A backup left by a run that died meanwhile is swept by
the same rule, but never just deleted: if its destination is empty (the run died between moving the old file
aside and putting the new one in) the old file is renamed back; if the destination holds a file, the backup is
the superseded version and is removed.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import time
from typing import List, Optional

log = logging.getLogger(__name__)

STALE_AFTER_S = 24 * 3600
_TEMP = re.compile(r"^\.(?P<base>.+)\.(?P<tag>[0-9a-f]{8})\.(?P<suffix>part\.tif|cog\.tif|aux\.xml|qml|part\.gpkg)$")
_BACKUP = re.compile(r"^\.(?P<base>.+)\.(?P<tag>[0-9a-f]{8})\.backup$")


def temp_path(path: str, suffix: str) -> str:
    """The hidden temporary file of ``path`` with ``suffix`` (part.tif, cog.tif, aux.xml, qml, part.gpkg)."""
    folder, base = os.path.split(path)
    return os.path.join(folder, f".{base}.{os.getpid():08x}.{suffix}")


def backup_path(path: str) -> str:
    """The hidden name an existing ``path`` is moved aside to while a job publishes over it."""
    folder, base = os.path.split(path)
    return os.path.join(folder, f".{base}.{os.getpid():08x}.backup")


def is_temp(path: str) -> bool:
    name = os.path.basename(path)
    return _TEMP.match(name) is not None or _BACKUP.match(name) is not None


def _matches(folder: str, pattern, base: Optional[str]):
    """(path, writer pid, base) of every hidden file in ``folder`` matching ``pattern`` (of ``base`` if given)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = []
    for name in names:
        match = pattern.match(name)
        if match and (base is None or match["base"] == base):
            found.append((os.path.join(folder, name), int(match["tag"], 16), match["base"]))
    return found


def _temps_of(path: str):
    """(temp path, writer pid) of every hidden temporary file of ``path``."""
    folder, base = os.path.split(os.path.abspath(path))
    return [(temp, pid) for temp, pid, _ in _matches(folder, _TEMP, base)]


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if sys.platform == "win32":
        import ctypes

        kernel = ctypes.windll.kernel32
        handle = kernel.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return kernel.GetLastError() == 5  # access denied: it exists
        code = ctypes.c_ulong()
        ok = kernel.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel.CloseHandle(handle)
        return bool(ok) and code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _remove(path: str, removed: List[str]) -> None:
    try:
        os.remove(path)
        removed.append(path)
    except OSError:
        pass  # someone else removed it, or the folder became read-only: not this job's problem


def discard(path: Optional[str]) -> None:
    """Remove ``path`` if it is there. Never raises: a cleanup that fails (folder deleted or made read-only)
    must not hide a job's own error or stop the rest of the cleanup; the next job's sweep retries."""
    if path and os.path.lexists(path):
        try:
            os.remove(path)
        except OSError as exc:
            log.warning("could not remove %s: %s", path, exc.strerror or exc)


def sweep_stale(path: str, now: Optional[float] = None) -> List[str]:
    """Remove leftovers of earlier runs that wrote ``path`` and settle stale backups in its folder (the
    backups of its sidecars are named after them, not after ``path``); returns what was removed."""
    removed: List[str] = []
    for temp, pid in _temps_of(path):
        if is_stale(temp, pid, now):
            _remove(temp, removed)
    folder = os.path.dirname(os.path.abspath(path))
    for backup, pid, base in _matches(folder, _BACKUP, None):
        if is_stale(backup, pid, now):
            _settle_backup(backup, os.path.join(folder, base), removed)
    return removed


def _settle_backup(backup: str, destination: str, removed: List[str]) -> None:
    """A run died while publishing: an empty destination gets its old file back; a destination holding a
    file is never overwritten (the backup is the superseded version, removed)."""
    if os.path.lexists(destination):
        _remove(backup, removed)
        return
    try:
        os.replace(backup, destination)
        log.info("restored %s, moved aside by an earlier run that did not finish", destination)
    except OSError:
        pass  # raced or refused: left for the next sweep


def is_stale(path: str, pid: int, now: Optional[float] = None) -> bool:
    """Whether ``path``, written by process ``pid``, is litter: this process's, a dead process's of
    this user, or older than a day. Also used for the Ray executor's scratch folders."""
    now = time.time() if now is None else now
    try:
        st = os.stat(path)
    except OSError:
        return False
    # a backup keeps its old file's mtime; the rename that made it sets ctime (POSIX)
    old = now - max(st.st_mtime, st.st_ctime) > STALE_AFTER_S
    mine = not hasattr(os, "geteuid") or st.st_uid == os.geteuid()
    return pid == os.getpid() or old or (mine and not _alive(pid))


def remove_own(path: str) -> List[str]:
    """Remove this process's temporary files of ``path`` (after a job was interrupted)."""
    removed: List[str] = []
    for temp, pid in _temps_of(path):
        if pid == os.getpid():
            _remove(temp, removed)
    return removed
