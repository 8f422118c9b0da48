"""Line-by-line reading of delimited text sources with decoding fallback and header checks.

Files are read as bytes one line at a time, so memory does not grow with the file. Each line
is decoded with the file's encoding; a line that is not valid in it is decoded as Latin-1
(every byte maps to a character) and counted as ``undecodable_bytes``. A UTF-8 byte-order
mark at the start is dropped. Blank lines are skipped (they are not rows). Fields are stripped
of surrounding white space.
"""

from __future__ import annotations

import csv
import pathlib
from typing import BinaryIO, Dict, Iterator, List, Sequence, Tuple

from ingest import cleaning
from ingest.errors import DataError

FALLBACK_ENCODING = "latin-1"


class DelimitedFile:
    """One delimited text file: its header (if any) and a stream of numbered rows.

    Args:
      path: the file.
      delimiter: the field separator.
      quoted: True for CSV quoting rules (quoted fields may hold the delimiter or newlines);
        False to split each line on the delimiter verbatim (the MovieLens 100K files).
      encoding: the expected encoding.
      report: counts lines that needed the Latin-1 fallback.
      has_header: whether the first non-blank line names the columns.

    Raises:
      DataError: the file is missing, not a regular file, or holds no non-blank line.
    """

    def __init__(
        self,
        path: str,
        delimiter: str,
        quoted: bool,
        encoding: str,
        report: cleaning.CleaningReport,
        has_header: bool,
    ) -> None:
        self.path = pathlib.Path(path)
        self.name = self.path.name
        if not self.path.exists():
            raise DataError(f"{self.path}: file does not exist")
        if not self.path.is_file():
            raise DataError(f"{self.path}: not a regular file")
        self._delimiter = delimiter
        self._quoted = quoted
        self._encoding = encoding
        self._report = report
        self._has_header = has_header
        self.header: List[str] = []
        self._header_line = 0
        probe = self._rows(count_fixes=False)
        first = next(probe, None)
        probe.close()
        if first is None:
            raise DataError(f"{self.path}: file is empty (no rows)")
        if has_header:
            self._header_line, self.header = first

    def columns(self, wanted: Sequence[str]) -> Dict[str, int]:
        """Finds named columns in the header.

        Args:
          wanted: the column names the caller needs.

        Returns:
          name -> field index.

        Raises:
          DataError: a wanted column is not in the header (the message lists both).
        """
        missing = [name for name in wanted if name not in self.header]
        if missing:
            raise DataError(
                f"{self.path}: missing column(s) {', '.join(repr(m) for m in missing)} in the "
                f"header (line {self._header_line}); the header has {describe_header(self.header)}"
            )
        return {name: self.header.index(name) for name in wanted}

    def rows(self) -> Iterator[Tuple[int, List[str]]]:
        """Yields (1-based line number where the row starts, stripped fields) after the header.

        Raises:
          DataError: (while iterating) a quoted CSV record cannot be parsed, e.g. a quote left
            open swallows the rest of the file into one over-long field.
        """
        rows = self._rows()
        if self._has_header:
            next(rows)
        return rows

    def _lines(self, handle: BinaryIO, count_fixes: bool) -> Iterator[Tuple[int, str]]:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode(self._encoding)
            except UnicodeDecodeError as err:
                text = raw.decode(FALLBACK_ENCODING)
                if count_fixes:
                    self._report.fix(
                        cleaning.UNDECODABLE_BYTES, self.name, number,
                        detail=f"byte {raw[err.start]:#04x} at column {err.start + 1} is not "
                        f"{self._encoding}; line decoded as {FALLBACK_ENCODING}",
                    )
            if number == 1:
                text = text.lstrip("\ufeff")
            yield number, text

    def _rows(self, count_fixes: bool = True) -> Iterator[Tuple[int, List[str]]]:
        with open(self.path, "rb") as handle:
            lines = self._lines(handle, count_fixes)
            if not self._quoted:
                for number, text in lines:
                    if text.strip():
                        yield number, [field.strip() for field in text.rstrip("\r\n").split(self._delimiter)]
                return
            tracker = _LineTracker(lines)
            reader = csv.reader(tracker, delimiter=self._delimiter)
            while True:
                try:
                    fields = next(reader)
                except StopIteration:
                    return
                except csv.Error as err:
                    if tracker.quote_open:
                        raise DataError(
                            f"{self.path} line {tracker.row_start}: a quoted field opened here is never closed "
                            f"(the rest of the file would be one field: {err})"
                        ) from err
                    if "field larger than field limit" not in str(err):
                        raise DataError(f"{self.path} line {tracker.row_start}: not readable as CSV ({err})") from err
                    if count_fixes:
                        self._report.drop(cleaning.FIELD_TOO_LONG, self.name, tracker.row_start,
                                          detail=f"a field is longer than {csv.field_size_limit()} characters")
                    continue
                if fields and any(field.strip() for field in fields):
                    yield tracker.row_start, [field.strip() for field in fields]


def describe_header(header: Sequence[str], max_columns: int = 12, max_chars: int = 40) -> str:
    """The header's first columns for an error message, each cut, with the count of the rest."""
    shown = [name if len(name) <= max_chars else name[:max_chars] + "..." for name in header[:max_columns]]
    rest = len(header) - len(shown)
    return ", ".join(shown) + (f" (and {rest} more columns)" if rest > 0 else "")


class _LineTracker:
    """Feeds lines to `csv.reader` and remembers where the current record started."""

    def __init__(self, lines: Iterator[Tuple[int, str]]) -> None:
        self._lines = lines
        self.row_start = 0
        self._quote_open = False

    def __iter__(self) -> "_LineTracker":
        return self

    def __next__(self) -> str:
        number, text = next(self._lines)
        if not self._quote_open:
            self.row_start = number
        # A record goes on to the next line while a quoted field is open; every quote toggles
        # the state (an escaped quote "" toggles twice).
        if text.count('"') % 2 == 1:
            self._quote_open = not self._quote_open
        return text

    @property
    def quote_open(self) -> bool:
        """Whether the lines read so far leave a quoted field open."""
        return self._quote_open
