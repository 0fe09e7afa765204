"""Reading request lines so that no input can end the server.

A request stream is read as bytes, one line at a time with a length cap, and decoded per line:
a line that is too long, or not UTF-8, becomes a `ProtocolError` the server answers with an
``error`` event, and the next line is read as usual. (A text stream would raise in the middle of
the loop on the first invalid byte, and an unbounded ``readline`` would hold a 10 GB line in memory.)
"""
from __future__ import annotations

import io
from typing import Iterable, Iterator, Union

from .messages import ProtocolError

# A JobSpec with a detailed polygon extent is a few MB at most; nothing legitimate comes near this.
MAX_LINE_BYTES = 32 * 2**20
_SKIP_CHUNK = 2**20


def _too_long(limit: int) -> ProtocolError:
    return ProtocolError(f"Request line is longer than {limit // 2**20} MiB and was skipped; send large "
                         f"polygons as a file path or simplify them.")


def _decoded(raw: bytes) -> Union[str, ProtocolError]:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ProtocolError(f"Request is not valid UTF-8 (byte {exc.start} of the line); send JSON text "
                             f"encoded as UTF-8.")


def _binary_lines(stream, limit: int) -> Iterator[Union[str, ProtocolError]]:
    while True:
        raw = stream.readline(limit + 1)
        if not raw:
            return
        if len(raw) > limit:
            while not raw.endswith(b"\n"):   # drop the rest of the line in bounded pieces
                raw = stream.readline(_SKIP_CHUNK)
                if not raw:
                    break
            yield _too_long(limit)
            continue
        yield _decoded(raw)


def request_lines(stream: Iterable, limit: int = MAX_LINE_BYTES) -> Iterator[Union[str, ProtocolError]]:
    """Each request line of ``stream`` as text, or the ProtocolError that describes why it cannot be read.

    ``stream`` is a binary file (``sys.stdin.buffer``: read with a length cap) or any iterable of lines
    (``str`` or ``bytes``; used in-process by tests and embedders).
    """
    if isinstance(stream, (io.BufferedIOBase, io.RawIOBase)):
        yield from _binary_lines(stream, limit)
        return
    for line in stream:
        if isinstance(line, bytes):
            yield _too_long(limit) if len(line) > limit else _decoded(line)
        elif len(line) > limit:
            yield _too_long(limit)
        else:
            yield line
