"""Runtime failures told as cause and fix, never as a library's internals or a Python class name.

`explain(exc, spec)` is the one place the protocol server and the CLI turn an unexpected exception
into the message a user reads: out of memory (which setting to lower), a full disk, an output folder
deleted or made read-only mid-job (naming the folder, not the hidden temp file), a damaged input or
checkpoint. The raising code keeps its own clear messages (`InputReadError`, hub's
`CheckpointLoadError`); anything else keeps its text, with the traceback in the protocol's ``detail``.
"""
from __future__ import annotations

import errno
import os
from typing import Any, Optional

from .leftovers import is_temp


class InputReadError(RuntimeError):
    """An input raster failed while being read (truncated, damaged, replaced mid-job)."""


def input_read_error(modality: str, path: str, exc: BaseException) -> InputReadError:
    first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
    return InputReadError(f"Input {modality}: {path} could not be read ({first}). The file may be truncated, "
                          f"damaged or replaced while the job ran; check it (gdalinfo -checksum) or export it again.")


def _parsed(spec: Any, base_dir: Optional[str]):
    from .jobspec import JobSpec, parse_jobspec

    if isinstance(spec, JobSpec):
        return spec
    try:
        return parse_jobspec(spec, base_dir=base_dir)
    except Exception:  # noqa: BLE001 - a spec that does not parse cannot add detail
        return None


def _out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("DefaultCPUAllocator" in text or "out of memory" in text.lower())


def _disk_full(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) == errno.ENOSPC or "No space left on device" in str(exc)


def _io_failure(exc: BaseException) -> bool:
    return isinstance(exc, OSError) or type(exc).__module__.startswith("rasterio")


def _output_folders(spec):
    return list(dict.fromkeys(os.path.dirname(path) for path in spec.outputs.values()))


_REFUSED = (errno.EACCES, errno.EPERM, errno.EROFS)


def _refused_folder(exc: BaseException, spec) -> Optional[str]:
    """The output folder a write or rename was refused in, from the error's own path (os.access cannot tell:
    root passes it, and a read-only file system is only found out by writing)."""
    if not isinstance(exc, OSError) or exc.errno not in _REFUSED:
        return None
    folders = {os.path.abspath(folder): folder for folder in _output_folders(spec)}
    for name in (exc.filename, exc.filename2):
        if name is not None:
            folder = folders.get(os.path.dirname(os.path.abspath(os.fsdecode(name))))
            if folder is not None:
                return folder
    return None


def explain(exc: BaseException, spec: Any = None, base_dir: Optional[str] = None) -> str:
    """The user-facing message for a job that failed with ``exc``."""
    from ..hub import CheckpointLoadError

    if isinstance(exc, (InputReadError, CheckpointLoadError)):
        return str(exc)
    job = _parsed(spec, base_dir) if spec is not None else None
    if _out_of_memory(exc):
        on = " on the GPU" if "CUDA" in str(exc) or "cuda" in str(getattr(job, "device", "")) else ""
        if job is None:
            return f"Out of memory{on}: lower tiling.batch_size, then tiling.window, or use a smaller model."
        tiling = job.tiling
        return (f"Out of memory{on}: lower tiling.batch_size (now {tiling.batch_size}; "
                f"try {max(1, tiling.batch_size // 2)}) first, then tiling.window (now {tiling.window}), or use a "
                f"smaller model (now {job.model}).")
    refused = _refused_folder(exc, job) if job is not None else None
    if refused is not None:
        return (f"The output folder {refused} became read-only (or lost write permission) while the job ran; "
                f"nothing was written there. Make it writable (or choose another folder) and run the job again.")
    if job is not None and _io_failure(exc):
        for folder in _output_folders(job):
            if not os.path.isdir(folder):
                return (f"The output folder {folder} was deleted or moved while the job ran; nothing was written "
                        f"there. Create it again (or choose another folder) and run the job again.")
            if not os.access(folder, os.W_OK | os.X_OK):
                return (f"The output folder {folder} became read-only while the job ran; nothing was written "
                        f"there. Make it writable (or choose another folder) and run the job again.")
    if _disk_full(exc):
        where = f" holding {', '.join(_output_folders(job))}" if job is not None else ""
        return (f"The disk{where} is full; nothing was written. Free some space or choose an output folder on "
                f"another disk, then run the job again.")
    text = str(exc).strip() or type(exc).__name__
    if is_temp(text.split(":")[0].strip()):  # a library naming our hidden temp file: name the output instead
        text = text.split(":", 1)[-1].strip()
    return text
