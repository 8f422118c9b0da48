"""The ``serve`` command: ``recsys serve --model-base-path DIR --model-name NAME ...``.

``register`` adds the command to the project CLI's subparsers; ``python -m serving.cli serve``
runs it alone.  Flags mirror ``tensorflow_model_server`` where one exists (a
``--model-config-file`` in ModelServerConfig text format for several models, a
``--batching-parameters-file`` in BatchingParameters text format); ``--write-tfs-configs DIR``
writes the stock TF Serving files for the same settings and prints its command line.
``--events-log DIR`` also accepts interaction events at ``POST /v1/events`` into the durable
event log in DIR (e.g. ``OUTPUT/events``, the one ``recsys learn`` tails).  Once serving, one line
``serving grpc=PORT rest=PORT`` is printed; SIGTERM drains and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from serving.config import (
    BatchingConfig,
    LimitsConfig,
    ModelConfig,
    SchedulingConfig,
    ServerConfig,
    ServingConfigError,
    VersionPolicy,
)

_LOG = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` command.

    Args:
        subparsers: the project CLI's subparsers; the command sets ``func=run_serve``.
    """
    parser = subparsers.add_parser(
        "serve", help="serve pushed models over TF Serving's gRPC and REST APIs",
        description="Serve <base path>/<integer version>/ SavedModels with TF Serving's API, "
                    "hot reload, dynamic batching, priorities and deadlines.")
    models = parser.add_argument_group("models")
    models.add_argument("--model-base-path", help="directory of integer version folders")
    models.add_argument("--model-name", default="recommender", help="name clients ask for")
    models.add_argument("--model-config-file",
                        help="ModelServerConfig text proto listing several models")
    models.add_argument("--num-versions", type=int, default=1,
                        help="serve the latest N versions (with --model-base-path)")
    models.add_argument("--no-contract-check", action="store_true",
                        help="serve models without the recommender serving_default contract")
    net = parser.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback)")
    net.add_argument("--grpc-port", type=int, default=8500, help="0 picks a free port")
    net.add_argument("--rest-port", type=int, default=8501, help="0 picks a free port")
    net.add_argument("--no-rest", action="store_true", help="disable the REST API")
    net.add_argument("--rest-api-timeout-ms", type=int, default=30_000)
    net.add_argument("--events-log", metavar="DIR", default=None,
                     help="accept interaction events at REST POST /v1/events (batches allowed); "
                          "each is validated and acknowledged only once durably appended to "
                          "the event log in DIR (created if needed; e.g. OUTPUT/events, the "
                          "log `recsys learn` reads); without it that route answers 404")
    sched = parser.add_argument_group("scheduling")
    sched.add_argument("--poll-interval-s", type=float, default=1.0)
    sched.add_argument("--batching-parameters-file", help="BatchingParameters text proto")
    sched.add_argument("--no-batching", action="store_true", help="run each request alone")
    defaults = BatchingConfig()
    for flag in ("max_batch_size", "batch_timeout_micros", "num_batch_threads",
                 "max_enqueued_batches"):
        sched.add_argument("--" + flag.replace("_", "-"), type=int, default=None,
                           help=f"default {getattr(defaults, flag)}")
    sched.add_argument("--worker-mode", choices=("thread", "process"), default="thread")
    sched.add_argument("--priority-classes", default="low,normal,high",
                       help="comma-separated, lowest first")
    sched.add_argument("--default-priority", default="normal")
    sched.add_argument("--tf-intra-op-threads", type=int, default=0,
                       help="TensorFlow threads per model worker runtime (0: one per core)")
    sched.add_argument("--tf-inter-op-threads", type=int, default=0)
    limits = parser.add_argument_group("limits")
    limit_defaults = LimitsConfig()
    limits.add_argument("--max-body-bytes", type=int, default=limit_defaults.max_body_bytes)
    limits.add_argument("--max-json-depth", type=int, default=limit_defaults.max_json_depth)
    limits.add_argument("--max-tensor-elements", type=int,
                        default=limit_defaults.max_tensor_elements)
    parser.add_argument("--drain-grace-s", type=float, default=10.0)
    parser.add_argument("--write-tfs-configs", metavar="DIR",
                        help="write stock TF Serving config files for these settings and exit")
    parser.add_argument("--log-level", default="INFO")
    parser.set_defaults(func=run_serve)


def _batching(args: argparse.Namespace) -> BatchingConfig:
    flags = {name: getattr(args, name) for name in
             ("max_batch_size", "batch_timeout_micros", "num_batch_threads", "max_enqueued_batches")
             if getattr(args, name) is not None}
    if args.batching_parameters_file:
        if flags:
            raise ServingConfigError("use either --batching-parameters-file or the batching flags")
        from serving.tfs_config import parse_batching_parameters

        with open(args.batching_parameters_file, encoding="utf-8") as handle:
            return parse_batching_parameters(handle.read())
    return BatchingConfig(**flags)


def build_config(args: argparse.Namespace) -> ServerConfig:
    """Turn parsed ``serve`` flags into a ``ServerConfig``.

    Raises:
        ServingConfigError: contradictory or invalid flags.
    """
    if bool(args.model_base_path) == bool(args.model_config_file):
        raise ServingConfigError("give exactly one of --model-base-path or --model-config-file")
    check = not args.no_contract_check
    if args.model_config_file:
        from serving.tfs_config import parse_models_config

        with open(args.model_config_file, encoding="utf-8") as handle:
            models = parse_models_config(handle.read(), check_contract=check)
    else:
        models = (ModelConfig(name=args.model_name, base_path=os.path.abspath(args.model_base_path),
                              version_policy=VersionPolicy(num_versions=args.num_versions),
                              check_contract=check),)
    return ServerConfig(
        models=models, host=args.host, grpc_port=args.grpc_port,
        rest_port=None if args.no_rest else args.rest_port,
        poll_interval_s=args.poll_interval_s, enable_batching=not args.no_batching,
        batching=_batching(args),
        scheduling=SchedulingConfig(
            priority_classes=tuple(c.strip() for c in args.priority_classes.split(",") if c.strip()),
            default_priority=args.default_priority, worker_mode=args.worker_mode,
            tf_intra_op_threads=args.tf_intra_op_threads,
            tf_inter_op_threads=args.tf_inter_op_threads),
        limits=LimitsConfig(max_body_bytes=args.max_body_bytes, max_json_depth=args.max_json_depth,
                            max_tensor_elements=args.max_tensor_elements),
        rest_api_timeout_ms=args.rest_api_timeout_ms, drain_grace_s=args.drain_grace_s,
        events_log_dir=os.path.abspath(args.events_log) if args.events_log else None)


def run_serve(args: argparse.Namespace) -> int:
    """Run the ``serve`` command until SIGTERM/SIGINT.

    Returns:
        The exit status (0 after a drain, 2 for invalid settings).
    """
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = build_config(args)
    except (ServingConfigError, OSError) as err:
        print(f"recsys serve: {err}", file=sys.stderr)
        return 2
    if args.write_tfs_configs:
        from serving.tfs_config import tfs_command_line, write_tfs_configs

        paths = write_tfs_configs(config, args.write_tfs_configs)
        for path in paths.values():
            print(path)
        print(" ".join(tfs_command_line(config, paths)))
        return 0
    from serving.server import ModelServer

    server = ModelServer(config)
    server.install_signal_handlers()
    ports = server.start()
    print(f"serving grpc={ports.grpc} rest={ports.rest}", flush=True)
    server.wait()
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m serving.cli serve ...``: the command without the rest of the project CLI."""
    from core.process import set_up_process

    set_up_process()
    parser = argparse.ArgumentParser(prog="serving")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
