"""A parameter-server cluster on 127.0.0.1 for the tests: 2 ps and 2 worker server processes,
and the chief (coordinator) running the Trainer's `run_fn` in a process of its own.

    python -m tests.distributed.ps_cluster chief ARGS_JSON   # the chief's process

Every process gets its own TF_CONFIG; the ports are free loopback ports picked at start.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import subprocess
import sys
from typing import Dict, Iterator, List

from core.process import child_env
from trainer import ps_local_cluster

ROOT = pathlib.Path(__file__).resolve().parents[2]


def cluster_spec() -> Dict[str, List[str]]:
    """1 chief, 2 workers and 2 parameter servers on free loopback ports."""
    return ps_local_cluster.loopback_cluster(workers=2, ps=2)


@contextlib.contextmanager
def servers(cluster: Dict[str, List[str]], log_dir: pathlib.Path) -> Iterator[List[subprocess.Popen]]:
    """The worker and ps server processes, logging to `log_dir`, ended on exit."""
    with ps_local_cluster.servers(cluster, str(log_dir), cwd=str(ROOT)) as processes:
        yield processes


def run_chief(cluster: Dict[str, List[str]], args: dict, log_dir: pathlib.Path, timeout_s: float
              ) -> subprocess.CompletedProcess:
    """Runs the chief (`run_fn` with `args`) to its end; its output goes to `log_dir/chief.log`."""
    with open(log_dir / "chief.log", "w") as log:
        return subprocess.run([sys.executable, "-m", "tests.distributed.ps_cluster", "chief", json.dumps(args)],
                              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s,
                              env=child_env(TF_CONFIG=ps_local_cluster.task_config(cluster, "chief", 0)))


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
