"""A parameter-server cluster on this machine: loopback addresses and the server processes.

For tests, benchmarks and local trials of `trainer.strategy: parameter_server`: the worker and
ps tasks run as `python -m trainer.parameter_server` processes, each with its own TF_CONFIG; the
chief is left to the caller (it runs `run_fn`, or any coordinator).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from typing import Dict, Iterator, List, Mapping, Optional

from core.process import child_env
from trainer.parameter_server import SERVER_TASKS


def loopback_cluster(workers: int, ps: int) -> Dict[str, List[str]]:
    """A cluster of 1 chief, `workers` workers and `ps` parameter servers on free 127.0.0.1 ports
    (bound together to be distinct, then released for the servers to take)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(1 + workers + ps)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        ports = iter(sock.getsockname()[1] for sock in sockets)
        return {job: [f"127.0.0.1:{next(ports)}" for _ in range(count)]
                for job, count in (("chief", 1), ("worker", workers), ("ps", ps))}


def task_config(cluster: Mapping[str, List[str]], job: str, index: int) -> str:
    """The TF_CONFIG value of task `index` of `job` in `cluster`."""
    return json.dumps({"cluster": dict(cluster), "task": {"type": job, "index": index}})


@contextlib.contextmanager
def servers(cluster: Mapping[str, List[str]], log_dir: Optional[str] = None,
            cwd: Optional[str] = None) -> Iterator[List[subprocess.Popen]]:
    """Runs every worker and ps task of `cluster` as a process until the block ends (then kills them).

    Args:
      cluster: the cluster (`loopback_cluster`).
      log_dir: where each task's output goes (`<job>-<index>.log`); None: discarded.
      cwd: the processes' working directory (default: this one's); `trainer` must be importable.

    Yields:
      The processes, ps tasks first.
    """
    processes: List[subprocess.Popen] = []
    try:
        for job in reversed(SERVER_TASKS):
            for index in range(len(cluster[job])):
                log_path = os.path.join(log_dir, f"{job}-{index}.log") if log_dir else os.devnull
                with open(log_path, "w") as log:
                    processes.append(subprocess.Popen(
                        [sys.executable, "-m", "trainer.parameter_server"], cwd=cwd, stdout=log,
                        stderr=subprocess.STDOUT, env=child_env(TF_CONFIG=task_config(cluster, job, index))))
        yield processes
    finally:
        for process in processes:
            process.kill()
        for process in processes:
            process.wait(timeout=30)
