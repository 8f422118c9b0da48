"""Choosing an importer for a path: `detect_format` and `import_any`.

Formats:

* ``ml-100k``: a folder with ``u.data`` (MovieLens 100K);
* ``ml-csv``: a folder with ``ratings.csv`` and ``movies.csv`` (MovieLens latest-small, 25M,
  32M);
* ``ml-dat``: a folder with ``ratings.dat`` and ``movies.dat`` (MovieLens 1M, 10M);
* ``csv``: a single delimited file with a header (`generic_csv.import_interactions_csv`); given
  without column names, they and the delimiter are read off the header (`column_guess`).
"""

from __future__ import annotations

import os
from typing import Optional

from ingest import assemble, column_guess, generic_csv, movielens
from ingest.errors import DataError
from ingest.report import DataReport

FORMATS = ("ml-100k", "ml-csv", "ml-dat", "csv")


def detect_format(path: str) -> str:
    """Names the format of a data source.

    Args:
      path: a MovieLens folder or an interactions file.

    Returns:
      "ml-100k", "ml-csv", "ml-dat" or "csv".

    Raises:
      DataError: the path does not exist, or is a folder of no known format.
    """
    if os.path.isfile(path):
        return "csv"
    if not os.path.isdir(path):
        raise DataError(f"{path}: no such file or folder")
    if os.path.isfile(os.path.join(path, "u.data")):
        return "ml-100k"
    if os.path.isfile(os.path.join(path, "ratings.csv")):
        return "ml-csv"
    if os.path.isfile(os.path.join(path, "ratings.dat")):
        return "ml-dat"
    raise DataError(
        f"{path}: unknown data format: a folder needs u.data (MovieLens 100K), ratings.csv and "
        f"movies.csv (MovieLens CSV) or ratings.dat and movies.dat (MovieLens 1M/10M); a generic "
        f"interactions CSV is given as the file itself"
    )


def import_any(
    path: str,
    out_dir: str,
    data_format: str = "auto",
    mapping: generic_csv.ColumnMapping = generic_csv.ColumnMapping(),
    eval_fraction: float = 0.2,
    items_path: Optional[str] = None,
    options: assemble.ImportOptions = assemble.ImportOptions(),
) -> DataReport:
    """Imports a source with the importer its format needs.

    Args:
      path: a MovieLens folder or an interactions CSV.
      out_dir: the output folder.
      data_format: "auto" (see `detect_format`) or one of `FORMATS`.
      mapping: column names, for the "csv" format only.
      eval_fraction: fraction of the newest interactions put in eval, in (0, 1).
      items_path: an items CSV, for the "csv" format only.
      options: memory, file size and span settings.

    Returns:
      The report (also written to ``<out_dir>/data_report.json``).

    Raises:
      DataError: the source is unreadable or of an unknown format.
      ValueError: `data_format` is not a known format, or an option does not apply to it.
    """
    if data_format == "auto":
        data_format = detect_format(path)
    if data_format not in FORMATS:
        raise ValueError(f"unknown data format {data_format!r}; expected auto or one of {', '.join(FORMATS)}")
    if data_format != "csv" and items_path is not None:
        raise ValueError(f"items_path applies to the csv format only, not {data_format}")
    if data_format == "ml-100k":
        return movielens.import_movielens_100k(path, out_dir, eval_fraction, options)
    if data_format == "ml-csv":
        return movielens.import_movielens_csv(path, out_dir, eval_fraction, options)
    if data_format == "ml-dat":
        return movielens.import_movielens_dat(path, out_dir, eval_fraction, options)
    if mapping == generic_csv.ColumnMapping():  # no columns named: read them off the header
        mapping = column_guess.guess_mapping(column_guess.read_header_line(path))
    return generic_csv.import_interactions_csv(path, out_dir, mapping, eval_fraction, items_path, options)
