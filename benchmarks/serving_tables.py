"""Serving tables at scale: export, load and serve a synthetic `ServingModel` with large tables.

Run from the repository root:

    TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m benchmarks.serving_tables \\
        --size 10000000x1000000 --size 100000x10000

Each size builds synthetic tables with numpy (`synthetic_tables`: `--users` users with a
`HISTORY_LENGTH` history each and `--seen` rated items on average, `--items` catalog items with
`--dim`-wide random candidate embeddings) around tiny towers (`tiny_networks`: hashed id
embeddings, so the networks do not grow with the tables), and exports the real
`trainer.serving_model.ServingModel` with `trainer.export.export_serving` in one spawned
process; a second spawned process loads the SavedModel with `tf.saved_model.load` and calls
`serving_default` on one known user per call (`--calls` calls after the first). Each process
reports its own peak RSS (`ru_maxrss`). The table: users, items, bytes of `saved_model.pb`, of
`variables/` and of `assets/`, export seconds (building the module included), load seconds,
first-call seconds, p50 of the later calls (ms), and the peak RSS of the export and serve
processes (MiB).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import tempfile
import time
from typing import Dict, List, Sequence, Tuple

import numpy as np

from core import features as F

TOP_K = 100
BUCKETS = 1000  # hashed id embeddings of the tiny towers


def _keys(prefix: bytes, count: int) -> np.ndarray:
    """Fixed-width byte keys prefix0, prefix1, ... ([count] 'S' array)."""
    return np.char.add(prefix, np.arange(count).astype("S"))


def synthetic_tables(users: int, items: int, seen: int = 5, seed: int = 0):
    """`ServingTables` of `users` users and `items` items with random contents.

    Args:
      users: known users (the tables hold one more row: the unknown user).
      items: catalog items.
      seen: mean number of training items per user (uniform in [0, 2 * seen]).
      seed: the random seed.

    Returns:
      The tables (integers already in narrow numpy types, as the model stores them).
    """
    from trainer.serving_model import ServingTables

    rng = np.random.default_rng(seed)
    rows = users + 1
    counts = rng.integers(0, 2 * seen + 1, size=rows).astype(np.int64)
    counts[-1] = 0  # the unknown user has seen nothing
    splits = np.zeros(rows + 1, np.int64)
    np.cumsum(counts, out=splits[1:])
    del counts
    user_features = {
        F.USER_ID_XF: np.arange(rows, dtype=np.int32),
        F.USER_AGE_XF: rng.integers(0, 7, rows, dtype=np.int8),
        F.USER_GENDER_XF: rng.integers(0, 3, rows, dtype=np.int8),
        F.USER_OCCUPATION_XF: rng.integers(0, 21, rows, dtype=np.int8),
        F.USER_HISTORY: rng.integers(0, items + 1, (rows, F.HISTORY_LENGTH), dtype=np.int32),
    }
    return ServingTables(
        user_keys=_keys(b"u", users),
        user_features=user_features,
        seen_row_splits=splits,
        seen_values=rng.integers(0, items, int(splits[-1]), dtype=np.int32),
        item_keys=_keys(b"i", items),
        item_features={F.ITEM_ID_XF: np.arange(items, dtype=np.int32),
                       F.ITEM_YEAR_XF: rng.integers(0, 10, items, dtype=np.int8)},
        item_titles=np.char.add(b"title ", np.arange(items).astype("S")),
        item_genres=np.full(items, b"Drama"),
        popular_rows=np.arange(min(TOP_K, items), dtype=np.int32),
        popular_scores=np.linspace(1.0, 0.0, min(TOP_K, items), dtype=np.float32),
    )


def tiny_networks(dim: int = 16):
    """(query tower, ranking model): tiny Keras networks over hashed ids (`BUCKETS` rows)."""
    import tensorflow as tf

    keras = tf.keras

    def hashed(ids, name):
        return keras.layers.Embedding(BUCKETS, dim, name=name)(keras.layers.Lambda(lambda t: t % BUCKETS)(ids))

    user_id = keras.Input((), dtype=tf.int64, name=F.USER_ID_XF)
    history = keras.Input((F.HISTORY_LENGTH,), dtype=tf.int64, name=F.USER_HISTORY)
    user = hashed(user_id, "user") + keras.layers.GlobalAveragePooling1D()(hashed(history, "history"))
    query_tower = keras.Model([user_id, history], keras.layers.Dense(dim)(user), name="query")
    rank_user = keras.Input((), dtype=tf.int64, name=F.USER_ID_XF)
    rank_item = keras.Input((), dtype=tf.int64, name=F.ITEM_ID_XF)
    joined = keras.layers.Concatenate()([hashed(rank_user, "rank_user"), hashed(rank_item, "rank_item")])
    ranking_model = keras.Model([rank_user, rank_item], keras.layers.Dense(1)(joined), name="ranking")
    return query_tower, ranking_model


def hash_transform():
    """A stand-in Transform layer for `recommend_with_features`: raw request features -> the
    transformed user features, by hashing (stock ops)."""
    import tensorflow as tf

    class HashTransform(tf.Module):
        def __call__(self, raw: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
            return {
                F.USER_ID_XF: tf.strings.to_hash_bucket_fast(raw[F.USER_ID][:, 0], BUCKETS),
                F.USER_AGE_XF: tf.clip_by_value(raw[F.USER_AGE][:, 0] // 10, 0, 6),
                F.USER_GENDER_XF: tf.strings.to_hash_bucket_fast(raw[F.USER_GENDER][:, 0], 3),
                F.USER_OCCUPATION_XF: tf.strings.to_hash_bucket_fast(raw[F.USER_OCCUPATION][:, 0], 21),
            }

    return HashTransform()


def synthetic_model(tables, dim: int = 16, seed: int = 0, model_class=None):
    """The real `ServingModel` (or `model_class`, a subclass) over `tables` (`synthetic_tables`)
    and `tiny_networks`, with random candidate embeddings (brute-force top-100)."""
    from trainer.serving_model import ServingModel, ServingOptions

    query_tower, ranking_model = tiny_networks(dim)
    embeddings = np.random.default_rng(seed + 1).standard_normal((len(tables.item_keys), dim), dtype=np.float32)
    return (model_class or ServingModel)(query_tower, ranking_model, embeddings, tables, hash_transform(),
                                         ServingOptions(top_k=TOP_K, candidates_to_rank=TOP_K))


def directory_bytes(path: str) -> int:
    """Total bytes of the files under `path` (0 when it does not exist)."""
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _export(users: int, items: int, dim: int, seen: int, path: str, out) -> None:
    """Child process: builds and exports the model; sends its figures through `out`."""
    from trainer import export

    start = time.perf_counter()
    module = synthetic_model(synthetic_tables(users, items, seen), dim)
    export.export_serving(module, path)
    out.send({"export_s": time.perf_counter() - start, "export_rss_mib": _peak_rss_mib()})


def _serve(path: str, users: int, calls: int, out) -> None:
    """Child process: loads the SavedModel and calls `serving_default`; sends its figures."""
    import tensorflow as tf

    start = time.perf_counter()
    model = tf.saved_model.load(path)
    serve = model.signatures[F.SERVING_SIGNATURE]
    load_s = time.perf_counter() - start
    rng = np.random.default_rng(7)
    start = time.perf_counter()
    answer = serve(user_id=tf.constant([b"u0"]))
    first_s = time.perf_counter() - start
    if answer[F.SERVING_OUTPUT_ITEMS].shape != (1, TOP_K) or answer[F.SERVING_OUTPUT_SCORES].dtype != tf.float32:
        raise RuntimeError(f"unexpected answer: {answer}")
    latencies = []
    for user in rng.integers(0, users, calls):
        start = time.perf_counter()
        serve(user_id=tf.constant([b"u%d" % user]))
        latencies.append(time.perf_counter() - start)
    out.send({"load_s": load_s, "first_s": first_s, "p50_ms": 1000 * float(np.median(latencies)),
              "serve_rss_mib": _peak_rss_mib()})


def _in_child(target, *args) -> dict:
    """Runs `target(*args, pipe)` in a spawned process; returns what it sent."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=target, args=args + (sender,))
    process.start()
    sender.close()
    try:
        result = receiver.recv()
    except EOFError:
        result = None
    process.join()
    if result is None or process.exitcode != 0:
        raise RuntimeError(f"{target.__name__} failed (exit code {process.exitcode})")
    return result


def measure(users: int, items: int, dim: int, seen: int, calls: int, root: str) -> dict:
    """Exports, loads and serves one size; returns its row of the table."""
    path = os.path.join(root, f"model-{users}x{items}")
    row = {"users": users, "items": items}
    row.update(_in_child(_export, users, items, dim, seen, path))
    row.update({"pb_bytes": os.path.getsize(os.path.join(path, "saved_model.pb")),
                "variables_bytes": directory_bytes(os.path.join(path, "variables")),
                "assets_bytes": directory_bytes(os.path.join(path, "assets"))})
    row.update(_in_child(_serve, path, users, calls))
    shutil.rmtree(path)
    return row


COLUMNS: Tuple[Tuple[str, str, str], ...] = (
    ("users", "users", "{:,}"), ("items", "items", "{:,}"), ("pb_bytes", "saved_model.pb B", "{:,}"),
    ("variables_bytes", "variables B", "{:,}"), ("assets_bytes", "assets B", "{:,}"),
    ("export_s", "export s", "{:.1f}"), ("load_s", "load s", "{:.1f}"), ("first_s", "first call s", "{:.2f}"),
    ("p50_ms", "p50 call ms", "{:.1f}"), ("export_rss_mib", "export peak RSS MiB", "{:,.0f}"),
    ("serve_rss_mib", "serve peak RSS MiB", "{:,.0f}"),
)


def format_table(rows: List[dict]) -> str:
    """The rows as a Markdown table."""
    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |",
             "|" + "|".join("---:" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(fmt.format(row[key]) for key, _, fmt in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def _size(text: str) -> Tuple[int, int]:
    try:
        users, items = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size {text!r}: expected USERSxITEMS, e.g. 10000000x1000000") from None
    if users < 1 or items < 1:
        raise argparse.ArgumentTypeError(f"--size {text!r}: users and items must be >= 1")
    return users, items


def main(argv: Sequence[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=_size, action="append",
                        help="USERSxITEMS (repeatable; default 10000000x1000000)")
    parser.add_argument("--dim", type=int, default=32, help="candidate embedding width")
    parser.add_argument("--seen", type=int, default=5, help="mean training items per user")
    parser.add_argument("--calls", type=int, default=50, help="timed calls after the first")
    parser.add_argument("--workdir", default=None, help="where the models are written (default: a temp dir)")
    args = parser.parse_args(argv)
    root = args.workdir or tempfile.mkdtemp(prefix="serving-tables-")
    rows = []
    for users, items in args.size or [(10_000_000, 1_000_000)]:
        rows.append(measure(users, items, args.dim, args.seen, args.calls, root))
        print(format_table(rows[-1:]), flush=True)
    print()
    print(format_table(rows))
    if args.workdir is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
