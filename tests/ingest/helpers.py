"""Small helpers shared by the data-layer tests: writing source files, reading splits back."""

from __future__ import annotations

import pathlib
from typing import Dict, List

from core import features
from ingest import writer


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


FLAGS0 = ["0"] * 19


def movielens_flags(*on):
    """The 19 genre flags of a MovieLens 100K item row, the given ones set."""
    flags = list(FLAGS0)
    for index in on:
        flags[index] = "1"
    return flags


def movielens_item(item, title, date, flags):
    """One u.item row."""
    return "|".join([item, title, date, "", "http://example.org"] + flags)


def write_100k(folder):
    """A small MovieLens 100K folder with one bad row of each kind (the comments say which)."""
    folder.mkdir()
    write_lines(folder / "u.user", [
        "1|24|M|technician|85711",
        "2|53|F|other|94043",
        "3|200|M|writer|32067",      # age out of range -> unknown (fixed)
        "4|x|F|artist|12345",        # non-numeric age -> unknown (fixed)
        "2|30|M|doctor|11111",       # duplicate id -> dropped
        "5|33|M",                    # 3 fields -> malformed
    ])
    bad_flags = movielens_flags()
    bad_flags[1] = "2"
    write_lines(folder / "u.item", [
        movielens_item("1", "Toy Story (1995)", "01-Jan-1995", movielens_flags(3, 4, 5)),   # Animation, Children's, Comedy
        movielens_item("2", "Café Society (1995)", "01-Jan-1995", movielens_flags(8)),      # Drama; Latin-1 é
        movielens_item("3", "Unknown Movie", "15-Mar-1997", movielens_flags(0)),           # year from date; genre "unknown"
        movielens_item("4", "Bad Flags (1990)", "01-Jan-1990", bad_flags),        # flag "2" -> read as 0 (fixed)
        "5|Short row|x",                                                  # malformed
    ], encoding="latin-1")
    write_lines(folder / "u.data", [
        "1\t1\t5\t100",
        "1\t2\t3\t200",
        "2\t1\t4\t150",     # older duplicate of the (2, 1) pair on line 7 -> dropped
        "2\t2\t4\t300",
        "3\t3\t2\t250",
        "1\t1\t5\t100",     # exact duplicate of line 1
        "2\t1\t2\t400",
        "1\t2",             # malformed
        "4\t2\t\t500",      # missing rating
        "4\t2\tabc\t500",   # non-numeric rating
        "4\t2\t7\t500",     # rating out of range
        "4\t2\tnan\t500",   # NaN rating
        "4\t2\t3\t-5",      # negative timestamp
        "4\t2\t3\t12.5",    # fractional timestamp
        "4\t9\t3\t350",     # item 9 is not in u.item -> catalog row added
        "9\t1\t1\t450",     # user 9 is not in u.user -> unknown user features
        "4\t4\t3\t500",
    ])
    return folder


MOVIES = [
    "movieId,title,genres",
    "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy",
    '2,"American President, The (1995)",Comedy|Drama|Romance',
    "3,Hyena Road,(no genres listed)",
    '4,"Crème Brûlée, Part 2 (2001)",Drama',
    "6,Too,Many,Fields",                  # malformed
    "2,Dup (2000),Drama",                 # duplicate id
]
RATINGS = [
    "userId,movieId,rating,timestamp",
    "1,1,4.0,964982703",
    "1,2,3.5,964981247",
    "2,3,0.5,964982224",
    "2,4,5.0,964983815",
    "3,5,2.5,964984000",       # movie 5 is on a line with a Latin-1 byte (written below)
    "3,1,0.0,964984100",       # rating below 0.5
    "3,2,,964984200",          # missing rating
    "3,2,4.0",                 # malformed
    "3,2,4.0,notatime",        # non-numeric timestamp
    "3,99,3.0,964985000",      # movie 99 is not in movies.csv
]


def write_ml_csv(folder, ratings=RATINGS, movies=MOVIES):
    """A MovieLens ratings.csv/movies.csv folder with one bad row of each kind."""
    folder.mkdir()
    write_lines(folder / "ratings.csv", ratings)
    # Movie 5's title holds the byte 0xFF, which is not UTF-8: decoded as Latin-1 ("ÿ").
    body = ("\n".join(movies[:5]) + "\n").encode("utf-8") + b"5,Bad\xff Bytes (1999),Comedy\n"
    body += ("\n".join(movies[5:]) + "\n").encode("utf-8")
    (folder / "movies.csv").write_bytes(body)
    return folder
