"""Small helpers shared by the data-layer tests: writing source files, reading splits back."""

from __future__ import annotations

import pathlib
from typing import Dict, List

from pipeline.data import writer
from trainer import features


def write_lines(path: pathlib.Path, lines: List[str], encoding: str = "utf-8") -> pathlib.Path:
    """Writes `lines` joined by newlines (with a final newline) in `encoding`."""
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def read_split(out_dir: pathlib.Path, split: str, span: int = 0) -> List[Dict]:
    """Every Example of one split of one span, sorted by (timestamp, user, item)."""
    rows = list(writer.read_examples(writer.split_pattern(str(out_dir), span, split)))
    return sorted(rows, key=lambda r: (r[features.TIMESTAMP], r[features.USER_ID], r[features.ITEM_ID]))


def read_catalog(out_dir: pathlib.Path) -> Dict[str, Dict]:
    """The item catalog as item id -> row."""
    return {row[features.ITEM_ID]: row for row in writer.read_examples(str(writer.catalog_path(str(out_dir))))}


def interaction(user: str, age: int, gender: str, occupation: str, item: str, title: str, genres: str,
                year: int, rating: float, timestamp: int) -> Dict:
    """An expected interaction row, spelled with the feature names."""
    return {
        features.USER_ID: user, features.USER_AGE: age, features.USER_GENDER: gender,
        features.USER_OCCUPATION: occupation, features.ITEM_ID: item, features.ITEM_TITLE: title,
        features.ITEM_GENRES: genres, features.ITEM_YEAR: year, features.RATING: rating,
        features.TIMESTAMP: timestamp,
    }


def catalog_row(item: str, title: str, genres: str, year: int) -> Dict:
    """An expected catalog row."""
    return {features.ITEM_ID: item, features.ITEM_TITLE: title, features.ITEM_GENRES: genres, features.ITEM_YEAR: year}
