"""Reading interaction rows: field count, required fields, rating and timestamp rules.

One function, `stage_rows`, used by every importer: it streams a `DelimitedFile`, applies the
row-level cleaning rules of `ingest.cleaning` in their documented order, counts each
dropped row under its reason, and stages the rest.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable, List, Optional, Tuple

from ingest import cleaning, parsing, staging, textfiles

logger = logging.getLogger(__name__)

IMPLICIT_RATING = 1.0
PROGRESS_EVERY = 1_000_000

RowHook = Callable[[List[str], int], None]


@dataclasses.dataclass(frozen=True)
class Columns:
    """Where the interaction fields are in a row, and their names for messages.

    Attributes:
      user: index of the user id field.
      item: index of the item id field.
      rating: index of the rating field, or None for implicit feedback (every row is an
        observed interaction and gets the rating `IMPLICIT_RATING`).
      timestamp: index of the timestamp field.
      names: (user, item, rating, timestamp) column names used in messages.
      num_fields: the number of fields a well-formed row has.
    """

    user: int
    item: int
    rating: Optional[int]
    timestamp: int
    names: Tuple[str, str, str, str]
    num_fields: int


def stage_rows(
    source: textfiles.DelimitedFile,
    columns: Columns,
    stage: staging.InteractionStage,
    report: cleaning.CleaningReport,
    hook: Optional[RowHook] = None,
) -> int:
    """Cleans every interaction row of a file into `stage`.

    Args:
      source: the interactions file.
      columns: where the fields are.
      stage: receives the clean rows.
      report: counts the dropped rows.
      hook: called with (fields, line) for each kept row (e.g. to collect side features).

    Returns:
      The number of rows read (kept or dropped).
    """
    user_name, item_name, rating_name, ts_name = columns.names
    rows_read = 0
    for line, fields in source.rows():
        rows_read += 1
        if rows_read % PROGRESS_EVERY == 0:
            logger.info("%s: %d rows read", source.name, rows_read)
        if len(fields) != columns.num_fields:
            report.drop(cleaning.MALFORMED_ROW, source.name, line,
                        detail=f"{len(fields)} fields, expected {columns.num_fields}")
            continue
        try:
            required = {
                user_name: fields[columns.user],
                item_name: fields[columns.item],
            }
            if columns.rating is not None:
                required[rating_name] = fields[columns.rating]
            required[ts_name] = fields[columns.timestamp]
            parsing.require(required)
            parsing.require_single_line_ids({user_name: fields[columns.user], item_name: fields[columns.item]})
            rating = (IMPLICIT_RATING if columns.rating is None
                      else parsing.parse_rating(fields[columns.rating], rating_name))
            timestamp = parsing.parse_timestamp(fields[columns.timestamp], ts_name)
        except cleaning.RowRejected as bad:
            report.reject(bad, source.name, line)
            continue
        stage.add(fields[columns.user], fields[columns.item], rating, timestamp, line)
        if hook is not None:
            hook(fields, line)
    logger.info("%s: %d rows read, %d staged", source.name, rows_read, stage.rows_added)
    return rows_read
