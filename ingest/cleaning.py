"""Cleaning rules shared by every importer, and `CleaningReport`, which counts them by reason.

The parsers of single fields live in `ingest.parsing`; the duplicate rules are here.

Every interaction row that is dropped is counted once, under the first problem found, checked
in this order:

1. ``malformed_row``: the row has the wrong number of fields;
2. ``missing_field``: the user, item, rating or timestamp field is empty;
   ``line_break_in_id``: the user or item id holds a line break (a quoted CSV field may): the
   served model stores its keys one per line (`trainer.table_storage`);
3. ``non_numeric``: the rating is not a number, or the timestamp is neither a number nor an
   ISO 8601 date (timestamps may be Unix seconds, Unix milliseconds or ISO dates:
   `parsing.parse_timestamp`);
4. ``rating_out_of_range``: the rating is NaN, infinite or outside
   [`features.MIN_RATING`, `features.MAX_RATING`];
5. ``timestamp_invalid``: the timestamp is NaN, infinite, not a whole number, or outside
   [0, `parsing.MAX_TIMESTAMP`) seconds (1970 to 2100) once read;
6. ``exact_duplicate``: same user, item, rating and timestamp as an earlier row (the first
   row in file order is kept);
7. ``duplicate_user_item``: after exact duplicates are gone, the same (user, item) pair
   appears again (with a different rating or timestamp): the NEWEST row is kept (largest
   timestamp; on equal timestamps the later row in the file), the others are dropped.

Side tables (users, items) drop a row as ``malformed_row``, ``missing_field`` (empty id),
``line_break_in_id`` or ``duplicate_id`` (an id seen earlier in the same table; the first row is
kept).

Rows kept after a fix are counted as fixed:

* ``undecodable_bytes``: a line that is not valid in the file's encoding (UTF-8 for CSV files)
  is decoded as Latin-1, which maps every byte to a character;
* ``age_out_of_range``: an age that is not a whole number in [`features.MIN_AGE`,
  `features.MAX_AGE`] becomes `features.UNKNOWN_INT` (an empty age is simply unknown);
* ``genre_flag_invalid``: a MovieLens 100K genre flag other than 0 or 1 is read as 0.

Normalisations that are not counted: fields are stripped of surrounding white space, runs of
white space inside a title become one space, empty side values become unknown.
"""

from __future__ import annotations

import collections
import logging
from typing import Dict, List, Optional, Tuple

import numpy as np

logger = logging.getLogger(__name__)

MALFORMED_ROW = "malformed_row"
MISSING_FIELD = "missing_field"
LINE_BREAK_IN_ID = "line_break_in_id"
NON_NUMERIC = "non_numeric"
RATING_OUT_OF_RANGE = "rating_out_of_range"
TIMESTAMP_INVALID = "timestamp_invalid"
EXACT_DUPLICATE = "exact_duplicate"
DUPLICATE_PAIR = "duplicate_user_item"
DUPLICATE_ID = "duplicate_id"
UNDECODABLE_BYTES = "undecodable_bytes"
AGE_OUT_OF_RANGE = "age_out_of_range"
GENRE_FLAG_INVALID = "genre_flag_invalid"
FIELD_TOO_LONG = "field_too_long"  # a CSV field over the csv module's field size limit


# Staged interactions: one record per cleaned row; `row` is the source line (file order).
STAGED_DTYPE = np.dtype(
    [("user", np.int32), ("item", np.int32), ("rating", np.float32), ("ts", np.int64), ("row", np.int64)]
)



class RowRejected(Exception):
    """One row breaks a cleaning rule; the importer counts it and goes on."""

    def __init__(self, reason: str, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.reason = reason
        self.field = field
        self.detail = detail


class CleaningReport:
    """Counts dropped and fixed rows by reason and by file, and keeps the first few events.

    Args:
      max_samples_per_reason: how many events of each reason are logged and kept as samples.
    """

    def __init__(self, max_samples_per_reason: int = 5) -> None:
        self.dropped: Dict[str, int] = collections.Counter()
        self.fixed: Dict[str, int] = collections.Counter()
        self.by_file: Dict[str, Dict[str, int]] = collections.defaultdict(collections.Counter)
        self.samples: List[str] = []
        self._max_samples = max_samples_per_reason
        self._sampled: Dict[str, int] = collections.Counter()

    def drop(self, reason: str, file: str, line: Optional[int], field: str = "", detail: str = "") -> None:
        """Counts one dropped row.

        Args:
          reason: one of the reason constants of this module.
          file: the source file's name.
          line: the 1-based line of the row, or None when the row has no single line.
          field: the field at fault, if one is.
          detail: what is wrong, for the log.
        """
        self.dropped[reason] += 1
        self.by_file[file][reason] += 1
        self._sample("dropped", reason, file, line, field, detail)

    def fix(self, reason: str, file: str, line: Optional[int], field: str = "", detail: str = "") -> None:
        """Counts one row kept after a fix (arguments as for `drop`)."""
        self.fixed[reason] += 1
        self.by_file[file][reason] += 1
        self._sample("fixed", reason, file, line, field, detail)

    def drop_many(self, reason: str, file: str, count: int) -> None:
        """Counts `count` dropped rows found by a whole-table rule (duplicates)."""
        if count:
            self.dropped[reason] += count
            self.by_file[file][reason] += count
            logger.warning("%s: %d row(s) dropped (%s)", file, count, reason)

    def reject(self, bad: RowRejected, file: str, line: int) -> None:
        """Counts the row that raised `bad` as dropped."""
        self.drop(bad.reason, file, line, bad.field, bad.detail)

    def _sample(self, action: str, reason: str, file: str, line: Optional[int], field: str, detail: str) -> None:
        if self._sampled[reason] >= self._max_samples:
            return
        self._sampled[reason] += 1
        where = file if line is None else f"{file} line {line}"
        if field:
            where += f" field {field}"
        message = f"{where}: {detail} ({action}: {reason})"
        self.samples.append(message)
        logger.warning("%s", message)


def dedup_interactions(rows: np.ndarray) -> Tuple[np.ndarray, int, int]:
    """Applies the two duplicate rules to staged rows (all rows of a user must be present).

    Args:
      rows: an array of `STAGED_DTYPE`.

    Returns:
      (kept rows in file order, exact duplicates dropped, repeated (user, item) rows dropped).
    """
    if len(rows) == 0:
        return rows, 0, 0
    order = np.lexsort((rows["row"], rows["ts"], rows["rating"], rows["item"], rows["user"]))
    ordered = rows[order]
    same_pair = (ordered["user"][1:] == ordered["user"][:-1]) & (ordered["item"][1:] == ordered["item"][:-1])
    exact = same_pair & (ordered["rating"][1:] == ordered["rating"][:-1]) & (ordered["ts"][1:] == ordered["ts"][:-1])
    unique = ordered[np.concatenate(([True], ~exact))]
    order = np.lexsort((unique["row"], unique["ts"], unique["item"], unique["user"]))
    ordered = unique[order]
    next_same = (ordered["user"][:-1] == ordered["user"][1:]) & (ordered["item"][:-1] == ordered["item"][1:])
    newest = ordered[np.concatenate((~next_same, [True]))]
    kept = newest[np.argsort(newest["row"], kind="stable")]
    return kept, len(rows) - len(unique), len(unique) - len(kept)
