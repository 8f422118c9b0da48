"""The `recsys` command line: run the pipeline, recommend, serve, manage data, TensorBoard."""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

DEFAULT_OUTPUT = "output"
SAMPLE_USERS = 3


def _set_process_environment() -> None:
    # Keras 2 (tf-keras) for TF-MOT and TFRS: must be set before TensorFlow is first imported,
    # in this process and every process it starts (Beam workers inherit it).
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline import runner, summary
    from pipeline.config import load_config

    overrides = {}
    if args.split:
        overrides["split"] = args.split
    if args.no_cache:
        overrides["enable_cache"] = False
    if args.warm_start:
        overrides["warm_start"] = True
    if args.no_compress:
        overrides["compress"] = False
    cfg = load_config(args.config, overrides).with_paths(args.output)
    report = runner.prepare_data(cfg, args.data)
    wall = runner.run_pipeline(cfg)
    print(summary.run_summary(cfg, wall, report, sample_users=SAMPLE_USERS))
    return 0


def _cmd_recommend(args: argparse.Namespace) -> int:
    from pipeline import recommend

    if args.server:
        recs = recommend.recommend_from_server(args.server, args.model_name, args.user, args.k)
    else:
        model = args.model or os.path.join(DEFAULT_OUTPUT, "serving_model")
        recs = recommend.recommend_from_saved_model(model, args.user, args.k)
    print(recommend.format_table(args.user, recs))
    return 0


def _cmd_tensorboard(args: argparse.Namespace) -> int:
    from pipeline import summary

    logdir = summary.tensorboard_logdir(args.output)
    print(f"TensorBoard on {logdir} at http://{args.host}:{args.port}/")
    from tensorboard import program

    board = program.TensorBoard()
    board.configure(argv=[None, "--logdir", logdir, "--host", args.host, "--port", str(args.port)])
    board.main()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (sub-commands registered by each package)."""
    parser = argparse.ArgumentParser(prog="recsys", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the whole TFX pipeline locally")
    run.add_argument("--data", help="MovieLens 100K folder, ratings.csv/movies.csv folder or interactions CSV (default: embedded synthetic data)")
    run.add_argument("--output", default=DEFAULT_OUTPUT, help="output directory (default: %(default)s)")
    run.add_argument("--config", help="JSON config file (keys of pipeline.config.PipelineConfig)")
    run.add_argument("--split", choices=("time", "random"), help="train/eval split (default: time)")
    run.add_argument("--no-cache", action="store_true", help="re-run every component")
    run.add_argument("--warm-start", action="store_true",
                     help="start training from the latest blessed model (continuous training on new spans)")
    run.add_argument("--no-compress", action="store_true", help="serve the Trainer's networks without CompressModel")
    run.set_defaults(func=_cmd_run)

    rec = commands.add_parser("recommend", help="top-N items for a user")
    rec.add_argument("--user", required=True)
    rec.add_argument("-k", type=int, default=10)
    rec.add_argument("--model", help=f"pushed model directory (default: {DEFAULT_OUTPUT}/serving_model)")
    rec.add_argument("--server", help="HOST:PORT of a running model server (gRPC)")
    rec.add_argument("--model-name", default="recsys")
    rec.set_defaults(func=_cmd_recommend)

    board = commands.add_parser("tensorboard", help="TensorBoard on the pipeline's logs")
    board.add_argument("--output", default=DEFAULT_OUTPUT)
    board.add_argument("--host", default="127.0.0.1")
    board.add_argument("--port", type=int, default=6006)
    board.set_defaults(func=_cmd_tensorboard)

    from online.cli import register as register_online
    from online.events_route import routes_from_args
    from pipeline.data.cli import register as register_data
    from serving.cli import register as register_serve

    register_data(commands)
    register_serve(commands, extra_routes_factory=routes_from_args)  # --events-log: /v1/events
    register_online(commands)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the `recsys` console script."""
    _set_process_environment()
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
