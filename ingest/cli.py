"""The ``recsys data`` command: ``generate`` synthetic data or ``import`` a data source.

`register` adds the command to the ``recsys`` parser. Each sub-command stores its handler as
``func`` in the parsed arguments; a handler prints the data report and returns 0, and on
input it cannot use prints ``error: <message>`` to stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import NoReturn

from core import features
from core.config_loader import ConfigError
from ingest.config import SyntheticDataConfig

EXIT_BAD_INPUT = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``data`` command and its sub-commands.

    Args:
      subparsers: the result of `add_subparsers()` on the ``recsys`` parser.
    """
    data = subparsers.add_parser("data", help="generate or import the canonical data set")
    commands = data.add_subparsers(dest="data_command", metavar="{generate,import}")
    commands.required = True
    defaults = SyntheticDataConfig()

    generate = commands.add_parser("generate", help="write a synthetic MovieLens-like data set")
    generate.add_argument("--output", required=True, metavar="DIR", help="output folder")
    generate.add_argument("--users", type=_positive, default=defaults.num_users)
    generate.add_argument("--items", type=_positive, default=defaults.num_items)
    generate.add_argument("--interactions", type=_positive, default=defaults.num_interactions)
    generate.add_argument("--tastes", type=_positive, default=defaults.num_tastes)
    generate.add_argument("--eval-fraction", type=_fraction, default=defaults.eval_fraction)
    generate.add_argument("--seed", type=int, default=defaults.seed)
    generate.add_argument("--span", type=_non_negative, default=0)
    generate.set_defaults(func=_generate)

    source = commands.add_parser("import", help="import MovieLens or a generic interactions CSV")
    source.add_argument("src", metavar="SRC", help="MovieLens folder or interactions CSV")
    source.add_argument("--output", required=True, metavar="DIR", help="output folder")
    source.add_argument("--format", default="auto", choices=("auto", "ml-100k", "ml-csv", "ml-dat", "csv"))
    source.add_argument("--user-col", default=features.USER_ID, help="csv: user id column")
    source.add_argument("--item-col", default=features.ITEM_ID, help="csv: item id column")
    source.add_argument("--rating-col", default=features.RATING, help="csv: rating column")
    source.add_argument("--implicit", action="store_true",
                        help="csv: no rating column; every row is an interaction with rating 1.0")
    source.add_argument("--timestamp-col", default=features.TIMESTAMP, help="csv: timestamp column")
    source.add_argument("--age-col", help="csv: user age column")
    source.add_argument("--gender-col", help="csv: user gender column")
    source.add_argument("--occupation-col", help="csv: user occupation column")
    source.add_argument("--title-col", help="csv: item title column")
    source.add_argument("--genres-col", help="csv: item genres column (values joined by |)")
    source.add_argument("--year-col", help="csv: item year column")
    source.add_argument("--items", metavar="PATH", help="csv: items CSV (item column and item side columns)")
    source.add_argument("--delimiter", default=",", help="csv: field separator")
    source.add_argument("--eval-fraction", type=_fraction, default=0.2)
    source.add_argument("--span", type=_non_negative, default=0)
    source.set_defaults(func=_import)


def _generate(args: argparse.Namespace) -> int:
    from ingest import generator  # TensorFlow loads only when a data command runs.
    from ingest.errors import DataError

    cfg = dataclasses.replace(
        SyntheticDataConfig(), num_users=args.users, num_items=args.items, num_interactions=args.interactions,
        num_tastes=args.tastes, eval_fraction=args.eval_fraction, seed=args.seed,
    )
    try:
        report = generator.generate_synthetic(args.output, cfg, span=args.span)
    except (ConfigError, DataError) as err:
        _fail(err)
    print(report.summary())
    return 0


def _import(args: argparse.Namespace) -> int:
    from ingest import assemble, generic_csv, importers
    from ingest.errors import DataError

    mapping = generic_csv.ColumnMapping(
        user=args.user_col, item=args.item_col, rating=None if args.implicit else args.rating_col,
        timestamp=args.timestamp_col, user_age=args.age_col, user_gender=args.gender_col,
        user_occupation=args.occupation_col, item_title=args.title_col, item_genres=args.genres_col,
        item_year=args.year_col, delimiter=args.delimiter,
    )
    try:
        data_format = importers.detect_format(args.src) if args.format == "auto" else args.format
        if data_format != "csv" and args.items is not None:
            raise DataError(f"--items applies to the csv format only, not {data_format}")
        report = importers.import_any(
            args.src, args.output, data_format, mapping, args.eval_fraction, args.items,
            assemble.ImportOptions(span=args.span),
        )
    except DataError as err:
        _fail(err)
    print(report.summary())
    return 0


def _fail(err: Exception) -> NoReturn:
    print(f"error: {err}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return value
