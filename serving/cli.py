"""The ``serve`` command: ``recsys serve --model-base-path DIR --model-name NAME ...``.

``register`` adds the command to the project CLI's subparsers; ``python -m serving.cli serve``
runs it alone.  Flags mirror ``tensorflow_model_server`` where one exists (a
``--model-config-file`` in ModelServerConfig text format for several models, a
``--batching-parameters-file`` in BatchingParameters text format); ``--write-tfs-configs DIR``
writes the stock TF Serving files for the same settings and prints its command line.
Extra REST routes come from ``extra_routes_factory`` (parsed flags -> path -> route), which
the top-level CLI passes in: that is how ``--events-log DIR`` mounts ``POST /v1/events``
without this package knowing about events.  Once serving, one line ``serving grpc=PORT
rest=PORT`` is printed; SIGTERM drains and exits 0.  Start-up failures are one line on stderr
and a distinct exit code (``EXIT_CODES``, listed in ``--help``), never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Callable, List, Mapping, Optional

from serving.config import (BatchingConfig, LimitsConfig, ModelConfig, SchedulingConfig,
                            ServerConfig, ServingConfigError, VersionPolicy)

_LOG = logging.getLogger(__name__)

RoutesFactory = Callable[[argparse.Namespace], Mapping[str, Any]]
EXIT_CONFIG = 2  # invalid flags or config files
EXIT_BIND = 3  # the gRPC or REST port cannot be bound (e.g. already in use)
EXIT_ROUTES = 4  # an extra route cannot be set up (e.g. --events-log names a file)
EXIT_CODES = {0: "stopped by SIGTERM/SIGINT after draining",
              EXIT_CONFIG: "invalid flags or configuration files",
              EXIT_BIND: "a port cannot be bound (already in use, or not a local address)",
              EXIT_ROUTES: "an extra REST route cannot be set up (e.g. --events-log names a "
                           "file or an unusable directory)"}


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every default in ``--help`` and keeps the epilog's lines."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None:  # "(default: None)" says nothing
            return action.help or ""
        return super()._get_help_string(action)


def register(subparsers: argparse._SubParsersAction,
             extra_routes_factory: Optional[RoutesFactory] = None) -> None:
    """Add the ``serve`` command.

    Args:
        subparsers: the project CLI's subparsers; the command sets ``func``.
        extra_routes_factory: builds extra REST routes from the parsed flags (the events
            route for ``--events-log``); without it ``--events-log`` is refused.
    """
    parser = subparsers.add_parser(
        "serve", help="serve pushed models over TF Serving's gRPC and REST APIs",
        description="Serve <base path>/<integer version>/ SavedModels with TF Serving's API, "
                    "hot reload, dynamic batching, priorities and deadlines.",
        formatter_class=_HelpFormatter,
        epilog="exit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items()))
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
    net.add_argument("--rest-api-timeout-ms", type=int, default=30_000,
                     help="longest REST predict, queueing included")
    net.add_argument("--events-log", metavar="DIR", default=None,
                     help="accept interaction events at REST POST /v1/events (batches allowed); "
                          "each is validated and acknowledged only once durably appended to "
                          "the event log in DIR (created if needed; e.g. OUTPUT/events, the "
                          "log `recsys learn` reads); without it that route answers 404 "
                          "(default: no events route)")
    sched = parser.add_argument_group("scheduling")
    sched.add_argument("--poll-interval-s", type=float, default=1.0,
                       help="seconds between scans of the base paths; a new version loads "
                            "once its files are unchanged over two scans")
    sched.add_argument("--batching-parameters-file", help="BatchingParameters text proto")
    sched.add_argument("--no-batching", action="store_true", help="run each request alone")
    defaults = BatchingConfig()
    for flag in ("max_batch_size", "batch_timeout_micros", "num_batch_threads",
                 "max_enqueued_batches"):
        sched.add_argument("--" + flag.replace("_", "-"), type=int, default=None,
                           help=f"TF Serving's {flag} (default: {getattr(defaults, flag)})")
    sched.add_argument("--frontend-processes", type=int, default=1,
                       help="gRPC/REST front-end processes sharing the ports (SO_REUSEPORT) in "
                            "front of one model worker pool; about one per core beyond the "
                            "first (1: in this process)")
    sched.add_argument("--urgent-workers", type=int, default=0,
                       help="extra model workers that run only batches led by the highest "
                            "priority class")
    sched.add_argument("--urgent-max-batch-size", type=int, default=0,
                       help="rows a batch led by the highest class may take (0: no cap)")
    sched.add_argument("--shed-max-class", default="",
                       help="highest class front-end lag may shed (default: those below "
                            "--default-priority)")
    sched.add_argument("--inflight-limit", type=int, default=0,
                       help="requests a front end may have waiting for answers; class c of C "
                            "is refused at (c+1)/C of it (0: no limit)")
    sched.add_argument("--worker-mode", choices=("thread", "process"), default="thread",
                       help="model workers: threads sharing each version, or processes")
    sched.add_argument("--priority-classes", default="low,normal,high",
                       help="comma-separated, lowest first")
    sched.add_argument("--default-priority", default="normal",
                       help="class of requests that name none")
    sched.add_argument("--tf-intra-op-threads", type=int, default=0,
                       help="TensorFlow threads per model worker runtime (0: one per core)")
    sched.add_argument("--tf-inter-op-threads", type=int, default=0,
                       help="TensorFlow inter-op threads per model worker runtime")
    limits = parser.add_argument_group("limits")
    limit_defaults = LimitsConfig()
    limits.add_argument("--max-body-bytes", type=int, default=limit_defaults.max_body_bytes,
                        help="largest REST body (also after gzip/deflate) and gRPC message")
    limits.add_argument("--max-json-depth", type=int, default=limit_defaults.max_json_depth,
                        help="deepest JSON nesting accepted")
    limits.add_argument("--max-tensor-elements", type=int,
                        default=limit_defaults.max_tensor_elements,
                        help="most elements in one request's inputs")
    limits.add_argument("--header-timeout-s", type=float,
                        default=limit_defaults.header_timeout_s,
                        help="a REST request's line and headers must arrive within this time "
                             "of their first byte, or the connection is closed")
    limits.add_argument("--idle-timeout-s", type=float, default=limit_defaults.idle_timeout_s,
                        help="a REST connection with nothing arriving is closed after this")
    parser.add_argument("--drain-grace-s", type=float, default=10.0,
                        help="on SIGTERM, how long in-flight requests may take")
    parser.add_argument("--write-tfs-configs", metavar="DIR",
                        help="write stock TF Serving config files for these settings and exit")
    parser.add_argument("--log-level", default="INFO", help="logging level")
    parser.set_defaults(func=lambda args: run_serve(args, extra_routes_factory))


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
            tf_inter_op_threads=args.tf_inter_op_threads, urgent_workers=args.urgent_workers,
            urgent_max_batch_size=args.urgent_max_batch_size, shed_max_class=args.shed_max_class,
            inflight_limit=args.inflight_limit),
        limits=LimitsConfig(max_body_bytes=args.max_body_bytes, max_json_depth=args.max_json_depth,
                            max_tensor_elements=args.max_tensor_elements,
                            header_timeout_s=args.header_timeout_s,
                            idle_timeout_s=args.idle_timeout_s),
        rest_api_timeout_ms=args.rest_api_timeout_ms, drain_grace_s=args.drain_grace_s,
        frontend_processes=args.frontend_processes)


def run_serve(args: argparse.Namespace,
              extra_routes_factory: Optional[RoutesFactory] = None) -> int:
    """Run the ``serve`` command until SIGTERM/SIGINT.

    Args:
        args: the parsed ``serve`` flags.
        extra_routes_factory: builds extra REST routes from ``args`` (None: none).

    Returns:
        The exit status (``EXIT_CODES``: 0 after a drain, 2 invalid settings, 3 a port
        cannot be bound, 4 an extra route cannot be set up).
    """
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = build_config(args)
        if getattr(args, "events_log", None) and extra_routes_factory is None:
            raise ServingConfigError("--events-log needs the events route, which this command "
                                     "was started without; use `recsys serve`")
    except (ServingConfigError, OSError) as err:
        print(f"recsys serve: {err}", file=sys.stderr)
        return EXIT_CONFIG
    if args.write_tfs_configs:
        from serving.tfs_config import tfs_command_line, write_tfs_configs

        paths = write_tfs_configs(config, args.write_tfs_configs)
        for path in paths.values():
            print(path)
        print(" ".join(tfs_command_line(config, paths)))
        return 0
    from serving.server import BindError, ModelServer

    try:
        routes = dict(extra_routes_factory(args)) if extra_routes_factory is not None else {}
    except (OSError, ValueError) as err:
        print(f"recsys serve: {err}", file=sys.stderr)
        return EXIT_ROUTES
    try:
        server = ModelServer(config, extra_routes=routes)
    except ServingConfigError as err:
        _close_all(routes)
        print(f"recsys serve: {err}", file=sys.stderr)
        return EXIT_CONFIG
    server.install_signal_handlers()
    try:
        ports = server.start()
    except BindError as err:  # start() has already shut down what it started
        print(f"recsys serve: {err}", file=sys.stderr)
        return EXIT_BIND
    print(f"serving grpc={ports.grpc} rest={ports.rest}", flush=True)
    server.wait()
    return 0


def _close_all(routes: Mapping[str, Any]) -> None:
    for route in routes.values():
        route.close()


def main(argv: Optional[List[str]] = None,
         extra_routes_factory: Optional[RoutesFactory] = None) -> int:
    """``python -m serving.cli serve ...``: the command without the rest of the project CLI.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).
        extra_routes_factory: builds extra REST routes from the parsed flags.

    Returns:
        The exit status.
    """
    from core.process import set_up_process

    set_up_process()
    parser = argparse.ArgumentParser(prog="serving")
    register(parser.add_subparsers(dest="command", required=True), extra_routes_factory)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
