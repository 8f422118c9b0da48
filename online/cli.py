"""Commands of online learning: `events add|roll|check|repair`, `learn`, `rollback --to VERSION`.

`register(subparsers)` adds them to the `recsys` parser. Paths default to the layout of
`recsys run --output DIR`: ``DIR/events`` (the event log), ``DIR/data`` (canonical spans),
``DIR/serving_model`` (versions), ``DIR/online`` (learner checkpoints), ``DIR/metadata.sqlite``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from typing import Any, List

DEFAULT_OUTPUT = "output"
EXIT_INVALID = 2
EXIT_SUPERSEDED = 3
EXIT_CONFLICT = 4  # events reuse stored event ids with other content (nothing stored)
EXIT_DAMAGED = 5  # the event log is damaged (`recsys events check` / `repair`)


def _path(args: argparse.Namespace, explicit: str, default_name: str) -> str:
    value = getattr(args, explicit, None)
    return value if value else os.path.join(args.output, default_name)


def _read_payload(path: str) -> Any:
    """JSON (an event, a list, or {"events": [...]}) or JSON lines; '-' reads stdin."""
    from online.events import load_json

    if path == "-":
        text = sys.stdin.read()
    else:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    try:
        return load_json(text)
    except ValueError as whole:
        lines = text.splitlines()
        if sum(1 for line in lines if line.strip()) < 2:
            raise ValueError(f"{path}: {whole}") from whole
        events = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                events.append(load_json(line))
            except ValueError as err:
                raise ValueError(f"{path}: line {number}: {err}") from err
        return events


def _flag_event(args: argparse.Namespace) -> dict:
    from core import features as F
    from online import events as E

    if not (args.user and args.item):
        raise ValueError("give --file, or --user and --item (with --rating for rating events)")
    event = {F.USER_ID: args.user, F.ITEM_ID: args.item, E.EVENT_TYPE: args.type}
    for key, value in ((F.RATING, args.rating), (F.TIMESTAMP, args.timestamp), (E.EVENT_ID, args.event_id)):
        if value is not None:
            event[key] = value
    return event


def _cmd_events_add(args: argparse.Namespace) -> int:
    from online import config as online_config
    from online.event_log import EventConflictError, EventLog
    from online.events import EventValidationError, parse_batch
    from online.log_format import LogCorruptError

    cfg = online_config.load(args.config).log
    try:
        payload = _read_payload(args.file) if args.file else _flag_event(args)
        now = time.time()
        events = parse_batch(payload, now, cfg.max_batch_events, cfg.max_future_s)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        if isinstance(err, EventValidationError):
            for problem in err.problems:
                print(f"  {problem}", file=sys.stderr)
        return EXIT_INVALID
    log_dir = _path(args, "log", "events")
    with EventLog(log_dir, cfg) as log:
        try:
            results = log.append(events, now)
        except EventConflictError as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_CONFLICT
        except LogCorruptError as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_DAMAGED
    for result in results:
        print(f"{result.event_id}\tseq {result.seq}\t{'duplicate' if result.duplicate else 'appended'}")
    appended = sum(not r.duplicate for r in results)
    print(f"acknowledged {len(results)} event(s) in {log_dir}: {appended} appended, {len(results) - appended} duplicate(s)")
    return 0


def _cmd_events_roll(args: argparse.Namespace) -> int:
    from online import config as online_config
    from online.span_roller import SpanRoller

    roller = SpanRoller(_path(args, "log", "events"), _path(args, "data", "data"), online_config.load(args.config).roller)
    result = roller.roll(force=args.force)
    if result.span is None:
        print(f"nothing rolled: fewer than {roller.config.min_events} new events after seq {result.start_seq} (use --force)")
    else:
        print(f"rolled events {result.start_seq}..{result.end_seq - 1} into span {result.span}: {result.rows}, "
              f"{result.new_items} new item(s)")
    return 0


def _cmd_events_check(args: argparse.Namespace) -> int:
    from online import log_repair

    log_dir = _path(args, "log", "events")
    try:
        report = log_repair.check(log_dir)
    except log_repair.RepairError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_DAMAGED
    for damage in report.damages:
        print(f"damaged: {damage}")
    for note in report.notes:
        print(f"note: {note}")
    if report.damaged:
        print(f"{log_dir}: {len(report.damages)} damaged region(s); events are refused until "
              f"`recsys events repair --log {log_dir}` moves them aside", file=sys.stderr)
        return EXIT_DAMAGED
    print(f"{log_dir}: intact ({report.end_seq} sequence numbers)")
    return 0


def _cmd_events_repair(args: argparse.Namespace) -> int:
    from online import log_repair

    log_dir = _path(args, "log", "events")
    try:
        report = log_repair.repair(log_dir)
    except log_repair.RepairError as err:
        print(f"error: {err}; nothing was changed", file=sys.stderr)
        return EXIT_DAMAGED
    for damage in report.damages:
        print(f"moved aside: {damage}")
    if not report.damages:
        print(f"{log_dir}: nothing to repair")
    else:
        print(f"{log_dir}: {len(report.damages)} damaged region(s) moved to "
              f"{os.path.join(log_dir, log_repair.QUARANTINE_DIR)}; every intact record kept with its seq")
    return 0


def _cmd_learn(args: argparse.Namespace) -> int:
    from online import artifacts
    from online import config as online_config
    from online.learner import LearnerPaths, OnlineLearner
    from pipeline.config import load_config
    from trainer.serving_model import ServingOptions

    pipeline_cfg = load_config(args.pipeline_config)
    if bool(args.trained_dir) != bool(args.transform_dir):
        print("error: give both --trained-dir and --transform-dir, or neither", file=sys.stderr)
        return EXIT_INVALID
    if args.ranker_dir and not args.trained_dir:
        print("error: --ranker-dir goes with --trained-dir (without them the ranker is found in the metadata store)",
              file=sys.stderr)
        return EXIT_INVALID
    if args.ranker_dir and not os.path.isfile(os.path.join(args.ranker_dir, "ranker.json")):
        print(f"error: --ranker-dir {args.ranker_dir}: no ranker.json there (give the pushed model's "
              "candidate_ranker folder)", file=sys.stderr)
        return EXIT_INVALID
    if args.trained_dir:
        trained_dir, transform_dir, ranker_dir = args.trained_dir, args.transform_dir, args.ranker_dir or ""
        pushed_model_dir = ""
    else:
        base = artifacts.locate_base(_path(args, "metadata", "metadata.sqlite"))
        trained_dir, transform_dir, ranker_dir = base.trained_dir, base.transform_dir, base.ranker_dir
        pushed_model_dir = base.pushed_model_dir
        served = f"compression variant '{base.variant}'" if base.variant else "the Trainer's networks"
        print(f"[learn] base: pushed version {base.pushed_version or '?'}, served networks: {served} ({trained_dir})")
    artifacts.check_base_dirs(trained_dir, transform_dir, ranker_dir)
    paths = LearnerPaths(_path(args, "log", "events"), _path(args, "data", "data"),
                         _path(args, "serving_model_dir", "serving_model"), _path(args, "state", "online"),
                         trained_dir, transform_dir, ranker_dir, pushed_model_dir)
    trainer = pipeline_cfg.trainer
    options = ServingOptions(top_k=trainer.top_k, candidates_to_rank=trainer.candidates_to_rank,
                             ranking_weight=trainer.ranking_weight)
    learner = OnlineLearner(paths, online_config.load(args.config).learner, trainer, options, args.model_name,
                            span_window=pipeline_cfg.span_window, item_item=pipeline_cfg.item_item)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    learner.start()
    reason = learner.run(args.max_seconds, args.max_exports, should_stop=stop.is_set)
    print(f"[learn] stopped ({reason}): {len(learner.exported)} version(s) exported, {learner.blocked} blocked by the guard")
    return EXIT_SUPERSEDED if reason == "superseded" else 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from online import rollback

    serving_dir = _path(args, "serving_model_dir", "serving_model")
    try:
        version = rollback.rollback(serving_dir, args.to, time.time())
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INVALID
    print(f"version {args.to} republished as version {version} in {serving_dir}; "
          "a server polling that folder serves it at its next poll")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="output folder of `recsys run` (default: %(default)s)")
    parser.add_argument("--config", help="online-learning JSON config (sections log, roller, learner)")


def register(subparsers: Any) -> None:
    """Adds `events add`, `events roll`, `learn` and `rollback` to a `recsys` sub-parser set."""
    events = subparsers.add_parser("events", help="interaction events: add to the log, roll into spans, check, repair")
    actions = events.add_subparsers(dest="events_command", required=True)
    add = actions.add_parser("add", help="validate events and append them durably to the event log")
    _common(add)
    add.add_argument("--log", help="event log folder (default: OUTPUT/events)")
    add.add_argument("--file", help="JSON or JSON-lines file of events ('-' for stdin)")
    add.add_argument("--user", help="user id of a single event")
    add.add_argument("--item", help="item id of a single event")
    add.add_argument("--rating", type=float, help="rating of a single rating event")
    add.add_argument("--type", default="rating", help="event type: rating (default), view, click, purchase")
    add.add_argument("--timestamp", type=int, help="Unix seconds (default: now)")
    add.add_argument("--event-id", help="client event id (makes retries exactly-once)")
    add.set_defaults(func=_cmd_events_add)
    roll = actions.add_parser("roll", help="roll new events into the next ExampleGen span")
    _common(roll)
    roll.add_argument("--log", help="event log folder (default: OUTPUT/events)")
    roll.add_argument("--data", help="canonical data folder (default: OUTPUT/data)")
    roll.add_argument("--force", action="store_true", help="roll even below the configured minimum of events")
    roll.set_defaults(func=_cmd_events_roll)
    for name, func, text in (
            ("check", _cmd_events_check, f"report damaged records of the event log (exit {EXIT_DAMAGED} when damaged)"),
            ("repair", _cmd_events_repair, "move damaged records of the event log to its quarantine folder")):
        sub = actions.add_parser(name, help=text)
        sub.add_argument("--output", default=DEFAULT_OUTPUT, help="output folder of `recsys run` (default: %(default)s)")
        sub.add_argument("--log", help="event log folder (default: OUTPUT/events)")
        sub.set_defaults(func=func)

    learn = subparsers.add_parser("learn", help="run the online learner (tails the log, exports new versions)")
    _common(learn)
    learn.add_argument("--pipeline-config", help="the pipeline's JSON config (trainer, serving and span window settings)")
    learn.add_argument("--trained-dir", help="the Trainer's networks (default: found in the metadata store)")
    learn.add_argument("--transform-dir", help="the Transform graph (default: found in the metadata store)")
    learn.add_argument("--ranker-dir", help="with --trained-dir: the candidate ranker the served model uses "
                                            "(the pushed model's candidate_ranker folder; default: none)")
    for flag, name in (("--log", "events"), ("--data", "data"), ("--serving-model-dir", "serving_model"),
                       ("--state", "online"), ("--metadata", "metadata.sqlite")):
        learn.add_argument(flag, help=f"default: OUTPUT/{name}")
    learn.add_argument("--model-name", default="recsys", help="model name of the warmup requests (default: %(default)s)")
    learn.add_argument("--max-seconds", type=float, help="stop after this long")
    learn.add_argument("--max-exports", type=int, help="stop after this many exported versions")
    learn.set_defaults(func=_cmd_learn)

    back = subparsers.add_parser("rollback", help="serve an earlier model version again (republished as the newest)")
    back.add_argument("--to", type=int, required=True, metavar="VERSION", help="the version to restore")
    back.add_argument("--output", default=DEFAULT_OUTPUT, help="output folder of `recsys run` (default: %(default)s)")
    back.add_argument("--serving-model-dir", help="model base path (default: OUTPUT/serving_model)")
    back.set_defaults(func=_cmd_rollback)


def main(argv: List[str]) -> int:
    """Runs one of these commands alone (for tests and scripts): ``python -m online.cli ...``."""
    from core.process import set_up_process

    set_up_process()
    parser = argparse.ArgumentParser(prog="recsys")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
