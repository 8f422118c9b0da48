"""A parameter-server cluster on 127.0.0.1 for the tests: 2 ps and 2 worker server processes,
and the chief (coordinator) running the Trainer's `run_fn` in a process of its own.

    python -m tests.distributed.ps_cluster chief ARGS_JSON   # the chief's process

Every process gets its own TF_CONFIG; the ports are free loopback ports picked at start.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import socket
import subprocess
import sys
from typing import Dict, Iterator, List

from core.process import child_env

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVERS = {"ps": 2, "worker": 2}


def free_ports(count: int) -> List[int]:
    """`count` distinct loopback ports nothing listens on (bound together, then released)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def cluster_spec() -> Dict[str, List[str]]:
    """1 chief, 2 workers and 2 parameter servers on free loopback ports."""
    ports = iter(free_ports(1 + sum(SERVERS.values())))
    cluster = {"chief": [f"127.0.0.1:{next(ports)}"]}
    for job, count in SERVERS.items():
        cluster[job] = [f"127.0.0.1:{next(ports)}" for _ in range(count)]
    return cluster


def tf_config(cluster: Dict[str, List[str]], job: str, index: int) -> str:
    return json.dumps({"cluster": cluster, "task": {"type": job, "index": index}})


@contextlib.contextmanager
def servers(cluster: Dict[str, List[str]], log_dir: pathlib.Path) -> Iterator[List[subprocess.Popen]]:
    """The worker and ps server processes (`python -m trainer.parameter_server`), ended on exit."""
    processes: List[subprocess.Popen] = []
    try:
        for job in SERVERS:
            for index in range(len(cluster[job])):
                log = open(log_dir / f"{job}-{index}.log", "w")  # noqa: SIM115 - closed with the process
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "trainer.parameter_server"], cwd=ROOT, stdout=log,
                    stderr=subprocess.STDOUT, env=child_env(TF_CONFIG=tf_config(cluster, job, index))))
                log.close()
        yield processes
    finally:
        for process in processes:
            process.kill()
        for process in processes:
            process.wait(timeout=30)


def run_chief(cluster: Dict[str, List[str]], args: dict, log_dir: pathlib.Path, timeout_s: float
              ) -> subprocess.CompletedProcess:
    """Runs the chief (`run_fn` with `args`) to its end; its output goes to `log_dir/chief.log`."""
    with open(log_dir / "chief.log", "w") as log:
        return subprocess.run([sys.executable, "-m", "tests.distributed.ps_cluster", "chief", json.dumps(args)],
                              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s,
                              env=child_env(TF_CONFIG=tf_config(cluster, "chief", 0)))


def _chief(args: dict) -> None:
    import logging

    from tfx.components.trainer.fn_args_utils import FnArgs

    from trainer import entry

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", force=True)
    entry.run_fn(FnArgs(train_files=args["train_files"], eval_files=args["eval_files"],
                        transform_output=args["transform_output"], serving_model_dir=args["serving_model_dir"],
                        model_run_dir=args["model_run_dir"], custom_config={entry.HPARAMS_KEY: args["trainer"]},
                        train_steps=args.get("train_steps")))


if __name__ == "__main__":
    if sys.argv[1:2] != ["chief"] or len(sys.argv) != 3:
        raise SystemExit("usage: python -m tests.distributed.ps_cluster chief ARGS_JSON")
    _chief(json.loads(sys.argv[2]))
