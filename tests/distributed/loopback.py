"""A training cluster of real processes on 127.0.0.1: ports, TF_CONFIG, start, wait, kill.

Every task is a Python module run as its own process (`tests.distributed.cluster_worker` unless
told otherwise) with its own TF_CONFIG; ports are chosen free at run time; `Cluster` kills every
process it started that is still running when its `with` block ends, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import socket
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

from core.process import child_env

ROOT = pathlib.Path(__file__).resolve().parents[2]


def free_ports(count: int) -> List[int]:
    """`count` distinct ports that nothing listens on now (all bound at once, then released)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def cluster_spec(**counts: int) -> Dict[str, List[str]]:
    """{task type: [127.0.0.1:port, ...]} for e.g. chief=1, worker=2, ps=2 (free ports)."""
    ports = iter(free_ports(sum(counts.values())))
    return {kind: [f"127.0.0.1:{next(ports)}" for _ in range(n)] for kind, n in counts.items() if n}


def tf_config(spec: Dict[str, List[str]], kind: str, index: int) -> str:
    return json.dumps({"cluster": spec, "task": {"type": kind, "index": index}})


class Cluster:
    """Starts worker processes and guarantees they are gone when the `with` block ends."""

    def __init__(self, log_dir: pathlib.Path) -> None:
        self.log_dir = log_dir
        self.processes: Dict[str, subprocess.Popen] = {}

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)

    def start(self, name: str, args: Sequence[str], tf_config_value: Optional[str] = None,
              module: str = "tests.distributed.cluster_worker") -> subprocess.Popen:
        """Starts `python -m MODULE ARGS --name NAME` (stdout+stderr to `log_dir/NAME.log`, appended).

        A name started again (a restarted task) replaces the earlier process, which must have ended.
        """
        env = child_env()
        env.pop("TF_CONFIG", None)
        if tf_config_value:
            env["TF_CONFIG"] = tf_config_value
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        previous = self.processes.get(name)
        if previous is not None and previous.poll() is None:
            raise RuntimeError(f"{name} is still running")
        log = open(self.log_dir / f"{name}.log", "a")
        with log:
            process = subprocess.Popen(
                [sys.executable, "-m", module, *args, "--name", name],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        self.processes[name] = process
        return process

    def wait(self, names: Sequence[str], timeout_s: float) -> None:
        """Waits for `names` to exit; fails with the end of a log if one fails or time runs out."""
        deadline = time.monotonic() + timeout_s
        for name in names:
            try:
                code = self.processes[name].wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{name} still running after {timeout_s:.0f}s:\n{self.log_tail(name)}") from None
            assert code == 0, f"{name} exited with {code}:\n{self.log_tail(name)}"

    def exit_code(self, name: str, timeout_s: float) -> Optional[int]:
        """`name`'s exit code once it ends within `timeout_s` seconds, else None (still running)."""
        try:
            return self.processes[name].wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def kill(self, name: str) -> int:
        """Sends SIGKILL to `name` (kill -9) and returns its exit code once it is gone."""
        self.processes[name].kill()
        return self.processes[name].wait(timeout=30)

    def log_tail(self, name: str, chars: int = 3000) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")[-chars:]
