"""Make pip's output readable in the installer: its retry warnings (a Python repr of urllib3's Retry and the
connection error, one per attempt) become one line each, and an install that failed for want of a network
gets one message saying so and what to do instead."""
from __future__ import annotations

import re
from typing import Iterable, Optional

_RETRY = re.compile(r"Retrying \(Retry\(total=(\d+).*?after connection broken by '(\w+)\((.*)'\)?': (\S+)")
_NO_NETWORK = ("Temporary failure in name resolution", "Name or service not known", "Network is unreachable",
               "getaddrinfo failed", "nodename nor servname provided", "Failed to establish a new connection",
               "No route to host", "Connection refused")

NO_NETWORK_MESSAGE = (
    "No network: pip could not reach the package index, so nothing was installed. Connect to the internet and "
    "press Install again; or install offline from a folder of wheels (set PIP_NO_INDEX=1 and "
    "PIP_FIND_LINKS=<folder> before starting QGIS); or choose an existing backend's Python under "
    "Settings › Interpreter.")


def _reason(error: str) -> str:
    found = next((marker for marker in _NO_NETWORK if marker in error), None)
    return found[0].lower() + found[1:] if found else error.split(":")[-1].strip(" ')\"") or "connection broken"


def summarise_line(line: str) -> str:
    """One readable line for a pip retry warning; any other line unchanged."""
    match = _RETRY.search(line)
    if match is None:
        return line
    left, error, where = int(match.group(1)), match.group(3), match.group(4)
    return f"pip: cannot reach the package index for {where} ({_reason(error)}); {left} retries left"


def no_network(lines: Iterable[str]) -> bool:
    """Whether pip's output shows it failed because no package index could be reached."""
    return any(marker in line for line in lines for marker in _NO_NETWORK)


def failure_message(title: str, returncode: int, output: str) -> Optional[str]:
    """The installer's one message for a failed step."""
    if no_network(output.splitlines()):
        return NO_NETWORK_MESSAGE
    return f"{title} failed (exit code {returncode}); see the log above."
