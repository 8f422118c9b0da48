"""`DataReport`: what an import or a generation run read, dropped, fixed and wrote.

The report is written next to the canonical data as ``data_report.json`` and printed by the
``recsys data`` command as a small table (`DataReport.summary`).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Dict, List

from core import features

REPORT_FILE = "data_report.json"


@dataclasses.dataclass
class DataReport:
    """Counts of one run that wrote a span of canonical data.

    Attributes:
      source: the input path, or a description of the synthetic world.
      format: "synthetic", "ml-100k", "ml-csv", "ml-dat" or "csv".
      span: the span number written.
      rows_read: interaction rows read from the source (header lines excluded).
      rows_written: rows written per split ("train", "eval").
      users: distinct users in the written interactions.
      items: distinct items in the written interactions.
      catalog_rows: rows of the written item catalog.
      catalog_rows_added: catalog rows made with unknown features for items that the
        interactions reference but the source's item table lacks.
      users_without_features: distinct users written with unknown side features because the
        source's user table lacks them (or the source has none).
      cutoff_timestamp: train timestamps are <= cutoff < eval timestamps.
      eval_fraction: the fraction of interactions asked for in the eval split.
      dropped: dropped rows by cleaning reason.
      fixed: rows kept after a fix, by cleaning reason.
      samples: the first few cleaning events, each naming file, line and field.
      columns: which columns were read as user, item, rating and timestamp (generic CSV).
    """

    source: str
    format: str
    span: int
    rows_read: int
    rows_written: Dict[str, int]
    users: int
    items: int
    catalog_rows: int
    catalog_rows_added: int = 0
    users_without_features: int = 0
    cutoff_timestamp: int = 0
    eval_fraction: float = 0.2
    dropped: Dict[str, int] = dataclasses.field(default_factory=dict)
    fixed: Dict[str, int] = dataclasses.field(default_factory=dict)
    samples: List[str] = dataclasses.field(default_factory=list)
    columns: str = ""

    @property
    def total_written(self) -> int:
        """Rows written over all splits."""
        return sum(self.rows_written.values())

    def to_json(self, path: str) -> None:
        """Writes the report as indented JSON.

        Args:
          path: the file to write (its folder must exist).
        """
        pathlib.Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    @classmethod
    def from_json(cls, path: str) -> "DataReport":
        """Reads a report written by `to_json`.

        Args:
          path: the JSON file.

        Returns:
          The report.
        """
        values: Dict[str, Any] = json.loads(pathlib.Path(path).read_text())
        return cls(**values)

    def summary(self) -> str:
        """A readable table of the counts, for the command line.

        Returns:
          Several lines of text, without a trailing newline.
        """
        rows = [
            ("source", self.source),
            ("format", self.format),
            *((("columns", self.columns),) if self.columns else ()),
            ("span", str(self.span)),
            ("rows read", f"{self.rows_read:,}"),
        ]
        for split in (features.TRAIN_SPLIT, features.EVAL_SPLIT):
            rows.append((f"rows written ({split})", f"{self.rows_written.get(split, 0):,}"))
        rows += [
            ("users", f"{self.users:,}"),
            ("items", f"{self.items:,}"),
            ("catalog rows", f"{self.catalog_rows:,}"),
            ("catalog rows added", f"{self.catalog_rows_added:,}"),
            ("users without features", f"{self.users_without_features:,}"),
            ("eval fraction", f"{self.eval_fraction:g}"),
            ("cutoff timestamp", str(self.cutoff_timestamp)),
        ]
        for title, counts in (("dropped", self.dropped), ("fixed", self.fixed)):
            if not counts:
                rows.append((title, "none"))
            for reason in sorted(counts):
                rows.append((f"{title}: {reason}", f"{counts[reason]:,}"))
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)
