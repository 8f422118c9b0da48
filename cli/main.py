"""The `recsys` command line: run the pipeline, recommend, serve, manage data, TensorBoard."""

from __future__ import annotations

import argparse
import os
import sys
import logging
import warnings
from typing import Dict, List, Optional, TextIO

DEFAULT_OUTPUT = "output"
SAMPLE_USERS = 3
EXIT_FAILURE = 1  # a pipeline component or the model failed (the traceback is in the log)
EXIT_USAGE = 2  # the user's input: config, data path, data file, flags
EXIT_GATE_REFUSED = 3  # the evaluation gate refused the model; nothing was pushed
EXIT_INTERRUPTED = 130
MAX_MESSAGE = 2000  # characters of an error message printed (a huge header is cut)
_TERMINAL: List[TextIO] = []


class UserInputError(ValueError):
    """A command-line value names something that cannot be used (the message says what)."""


class GateRefusal(RuntimeError):
    """The evaluation gate refused the new model; the message carries the gate's reason."""


def set_terminal(stream: TextIO) -> None:
    """Where the command's own error lines go (the terminal, even when library output is logged)."""
    _TERMINAL[:] = [stream]


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + f" ... ({len(text) - MAX_MESSAGE} more characters)"


def _error(args: argparse.Namespace, message: str) -> None:
    stream = _TERMINAL[0] if _TERMINAL else sys.stderr
    print(f"recsys {args.command}: error: {message}", file=stream, flush=True)


def is_user_error(err: BaseException) -> bool:
    """Whether `err` is a mistake in the user's input (config, data, paths), not a failure."""
    from components.validation_gate import DataValidationError
    from core.config_loader import ConfigError
    from ingest.errors import DataError
    from online.artifacts import BaseNotFoundError
    from online.events import EventValidationError

    return isinstance(err, (ConfigError, DataError, UserInputError, DataValidationError, BaseNotFoundError,
                            EventValidationError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                            PermissionError))


def _cmd_run(args: argparse.Namespace) -> int:
    from cli import summary
    from core.process import route_library_output
    from pipeline import local_run
    from pipeline.config import load_config

    overrides: Dict[str, object] = {}
    if args.split:
        overrides["split"] = args.split
    if args.no_cache:
        overrides["enable_cache"] = False
    if args.warm_start:
        overrides["warm_start"] = True
    if args.no_compress:
        overrides["compress"] = False
    cfg = load_config(args.config, overrides).with_paths(args.output)  # every value checked before any work
    if args.compression_sweep:
        cfg = cfg.with_compression_sweep()
    if args.tune:
        cfg = cfg.with_tuning()
    if args.data is not None and not os.path.exists(args.data):
        raise UserInputError(f"--data {args.data}: no such file or folder")
    if not args.verbose:
        log_path = os.path.join(os.path.abspath(args.output), "logs", "recsys-run.log")
        set_terminal(route_library_output(log_path))
        print(f"[run] library output (TensorFlow, Beam, TFX) goes to {log_path}; --verbose shows it here")
    report = local_run.prepare_data(cfg, args.data)
    wall = local_run.run_pipeline(cfg)
    print(summary.run_summary(cfg, wall, report, sample_users=SAMPLE_USERS))
    verdict = summary.latest_blessing(cfg.pipeline_root)
    if verdict is not None and not verdict["blessed"]:
        raise GateRefusal(f"the evaluation gate refused the model, nothing was pushed: {verdict['reason']}")
    return 0


def _cmd_recommend(args: argparse.Namespace) -> int:
    from cli import recommend

    if args.server:
        recs = recommend.recommend_from_server(args.server, args.model_name, args.user, args.k)
    else:
        model = args.model or os.path.join(DEFAULT_OUTPUT, "serving_model")
        recs = recommend.recommend_from_saved_model(model, args.user, args.k)
    print(recommend.format_table(args.user, recs))
    return 0


def _cmd_tensorboard(args: argparse.Namespace) -> int:
    from cli import summary

    logdir = summary.tensorboard_logdir(args.output)
    print(f"TensorBoard on {logdir} at http://{args.host}:{args.port}/")
    from tensorboard import program

    board = program.TensorBoard()
    board.configure(argv=[None, "--logdir", logdir, "--host", args.host, "--port", str(args.port)])
    board.main()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (sub-commands registered by each package)."""
    parser = argparse.ArgumentParser(
        prog="recsys", description=__doc__,
        epilog="exit codes: 0 done, 1 a component or model failed, 2 bad input (config, data, flags), "
               "3 the evaluation gate refused the model (nothing pushed), 130 interrupted")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the whole TFX pipeline locally")
    run.add_argument("--data", help="MovieLens 100K folder, ratings.csv/movies.csv folder, ratings.dat/movies.dat folder (1M, 10M) "
                          "or interactions CSV (default: embedded synthetic data)")
    run.add_argument("--output", default=DEFAULT_OUTPUT, help="output directory (default: %(default)s)")
    run.add_argument("--config", help="JSON config file (keys of pipeline.config.PipelineConfig)")
    run.add_argument("--split", choices=("time", "random"), help="train/eval split (default: time)")
    run.add_argument("--no-cache", action="store_true", help="re-run every component")
    run.add_argument("--warm-start", action="store_true",
                     help="start training from the latest blessed model (continuous training on new spans)")
    run.add_argument("--no-compress", action="store_true", help="serve the Trainer's networks without CompressModel")
    run.add_argument("--compression-sweep", action="store_true",
                     help="build and measure every compression variant, not only the likely winners")
    run.add_argument("--tune", action="store_true",
                     help="search the retrieval hyperparameters with a Tuner node first (config section 'tuner'); "
                          "the Trainer trains with the best ones")
    run.add_argument("--verbose", action="store_true",
                     help="show TensorFlow/Beam/TFX output here instead of OUTPUT/logs/recsys-run.log")
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

    from ingest.cli import register as register_data
    from online.cli import register as register_online
    from online.events_route import routes_from_args as events_routes
    from serving.cli import register as register_serve

    register_data(commands)
    register_serve(commands, extra_routes_factory=events_routes)  # POST /v1/events with --events-log
    register_online(commands)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the `recsys` console script.

    A user's mistake (a bad config, data path or data file) ends with one line on standard
    error and exit code 2; a model the evaluation gate refuses with exit code 3; a pipeline
    component that fails with exit code 1 and its error on one line (the traceback is in the
    run's log). Exit code 130 on Ctrl-C.
    """
    from core.process import set_up_process

    set_up_process()
    args = build_parser().parse_args(argv)
    if not getattr(args, "verbose", False):  # libraries' notices about their own future versions
        warnings.filterwarnings("ignore", category=FutureWarning)
    set_terminal(sys.stderr)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        _error(args, "interrupted")
        return EXIT_INTERRUPTED
    except GateRefusal as err:
        _error(args, str(err))
        return EXIT_GATE_REFUSED
    except Exception as err:  # noqa: BLE001 - sorted into user errors and failures below
        if not is_user_error(err):
            logging.getLogger(__name__).exception("recsys %s failed", args.command)
            _error(args, f"failed: {type(err).__name__}: {_one_line(err)}")
            return EXIT_FAILURE
        _error(args, _one_line(err))
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
