"""A throwaway Ray cluster on 127.0.0.1 inside private network + PID namespaces, for the Ray tests.

Ray binds the machine's own address unless told otherwise; in a fresh network namespace the only
interface is loopback, so nothing of the test cluster is reachable from outside. The namespace's
PID 1 is a `sleep` we start: killing it ends every process of the cluster at once (no `ray stop`,
which would stop every Ray process of the user). Commands that must reach the cluster run with
`nsenter -n` (network only), so they stay ordinary child processes we can signal.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

BIN = Path(sys.executable).parent


def namespaces_available() -> Optional[str]:
    """None when private namespaces work here, else why not."""
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    probe = subprocess.run(_unshare() + ["true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create namespaces: {probe.stderr.strip()}"
    return None


def _unshare() -> List[str]:
    userns = ["-r"] if os.geteuid() != 0 else []  # unprivileged: a user namespace maps us to root in it
    return ["unshare", *userns, "-n", "-p", "-f", "-m", "--mount-proc"]


class NetnsCluster:
    """``ray start --head`` on 127.0.0.1 with ``cpus`` CPU slots (one 1-CPU actor each)."""

    def __init__(self, cpus: int = 2, env: Optional[dict] = None):
        # RAY_AUTH_MODE: Ray 2.5x turns token auth on for clusters when ~/.ray/auth_token exists; this
        # one lives in a private namespace, and its clients (our driver) get the same setting.
        self.env = dict(os.environ, **(env or {}), RAY_DISABLE_USAGE_STATS="1", RAY_AUTH_MODE="disabled")
        self.temp = tempfile.mkdtemp(prefix="tmray")   # short: Ray's socket paths live under it
        self.holder = subprocess.Popen(_unshare() + ["bash", "-c", "ip link set lo up && exec sleep 3600"],
                                       stderr=subprocess.DEVNULL)
        self.init_pid = self._child_of(self.holder.pid)
        userns = ["-U", "--preserve-credentials"] if os.geteuid() != 0 else []
        self._net = ["nsenter", "-t", str(self.init_pid), *userns, "-n"]
        self._all = self._net + ["-p", "-m"]
        self.port = 6390
        self.address = f"127.0.0.1:{self.port}"
        start = subprocess.run(self._all + [str(BIN / "ray"), "start", "--head", "--node-ip-address=127.0.0.1",
                                            f"--port={self.port}", f"--num-cpus={cpus}", "--num-gpus=0",
                                            "--include-dashboard=false", "--object-store-memory=80000000",
                                            "--disable-usage-stats", f"--temp-dir={self.temp}"],
                               env=self.env, capture_output=True, text=True, timeout=120)
        if start.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start failed:\n{start.stdout}\n{start.stderr}")

    @staticmethod
    def _child_of(pid: int) -> int:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for task in Path(f"/proc/{pid}/task").glob("*"):
                children = (task / "children").read_text().split()
                if children:
                    return int(children[0])
            time.sleep(0.05)
        raise RuntimeError("the namespace holder did not start")

    def popen(self, args: List[str], **kw) -> subprocess.Popen:
        """A command in the cluster's network namespace (a plain child process of ours)."""
        return subprocess.Popen(self._net + args, env=kw.pop("env", self.env), **kw)

    def run(self, args: List[str], timeout: float = 300, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(self._net + args, env=kw.pop("env", self.env), timeout=timeout,
                              capture_output=True, text=True, **kw)

    def _in_namespace(self, pid: int) -> bool:
        try:
            return os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{self.init_pid}/ns/pid")
        except OSError:
            return False

    def processes(self, title: str) -> List[int]:
        """PIDs (as seen from here) of the cluster's processes whose command line contains ``title``."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and self._in_namespace(int(entry.name)):
                try:
                    cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if title in cmd:
                    found.append(int(entry.name))
        return found

    def stop(self) -> None:
        """Kill the namespace's PID 1: the kernel ends every cluster process with it."""
        try:
            os.kill(self.init_pid, signal.SIGKILL)
        except (ProcessLookupError, AttributeError):
            pass
        try:
            self.holder.wait(10)
        except subprocess.TimeoutExpired:
            self.holder.kill()
        shutil.rmtree(self.temp, ignore_errors=True)
