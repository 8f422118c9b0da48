"""Recall@100 and time per query of the ScaNN retrieval index against brute force (1M items x 64).

Two catalogs of `--items` vectors of `--dim` dimensions, each searched for the top 100 by dot
product with TensorFlow brute force (one matmul + `tf.math.top_k`: the exact answer and the
baseline time) and with ScaNN at several `leaves_to_search`:

* random: items and queries drawn from N(0, I) -- the worst case for any ANN index (no
  structure to partition).
* trained: the item and query vectors of a small two-tower trained here on a synthetic world.
  Every item has features -- one of 20,000 subcategories (20 per each of 1,000 clusters), one of
  5,000 brands, a scalar quality -- and no id embedding, so all items get a trained vector from
  the item tower (embeddings of cluster, subcategory and brand, plus quality, through two dense
  layers). Users like two clusters; each interaction picks a favourite cluster (80 %) or a random
  one, a subcategory within it by the user's hidden taste, and the best of four random items of
  that subcategory by quality (Gumbel noise). The query tower mean-pools the embeddings of a
  user's 10 previous items and applies two dense layers; the towers are trained with in-batch
  softmax on the next item of `--train-users` users. Queries are fresh users of the same world.

The ScaNN index is built with `scann_ops.builder` exactly as `tfrs.layers.factorized_top_k.ScaNN`
(the serving model's index, `trainer.scann_serving_model`) builds it: `tree(num_leaves,
leaves_to_search, training_iterations=12)`, `score_ah(dimensions_per_block=2)`,
`reorder(max --reorder)`; one index per catalog, searched at each `leaves_to_search` and each
`--reorder` (`pre_reorder_num_neighbors`) through the same
TensorFlow op (`search_batched_parallel`, as the layer calls it). Times are per query: batch 1
(queries one at a time) and batch 64 (the batch's time / 64), as wall time (the speed-ups) and as
this process's CPU time (all threads; less sensitive to other load on a shared machine, which
slows the multi-threaded brute force more than ScaNN). Prints a table and writes
`ann.json` and `ann.png` (recall vs time per query) to `--out-dir`.

    nice python -m benchmarks.ann
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time
from typing import Callable, Dict, List, Tuple

import numpy as np

K = 100
CLUSTERS, SUB_PER_CLUSTER, BRANDS, HISTORY = 1000, 20, 5000, 10
SUBCATS = CLUSTERS * SUB_PER_CLUSTER


class World:
    """The synthetic catalog and taste model of the trained case (see the module docstring)."""

    def __init__(self, n_items: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.subcat = rng.integers(0, SUBCATS, n_items)
        self.cluster = self.subcat // SUB_PER_CLUSTER
        self.brand = rng.integers(0, BRANDS, n_items)
        self.quality = rng.normal(size=n_items).astype(np.float32)
        self.order = np.argsort(self.subcat, kind="stable")
        self.starts = np.searchsorted(self.subcat[self.order], np.arange(SUBCATS + 1))
        centres = rng.normal(size=(CLUSTERS, 16))
        self.subcat_taste = np.repeat(centres, SUB_PER_CLUSTER, axis=0) + rng.normal(size=(SUBCATS, 16))

    def _items_of(self, rng: np.random.Generator, subcats: np.ndarray) -> np.ndarray:
        counts = np.maximum(self.starts[subcats + 1] - self.starts[subcats], 1)
        positions = self.starts[subcats][:, None] + rng.integers(0, counts[:, None], (len(subcats), 4))
        picks = self.order[np.minimum(positions, len(self.order) - 1)]
        noisy = self.quality[picks] + rng.gumbel(size=picks.shape)
        return picks[np.arange(len(subcats)), noisy.argmax(axis=1)]

    def users(self, rng: np.random.Generator, n_users: int, length: int) -> np.ndarray:
        """[n_users, length] item sequences of fresh users."""
        favourites = rng.integers(0, CLUSTERS, (n_users, 2))
        taste = rng.normal(size=(n_users, 16))
        out = np.empty((n_users, length), np.int64)
        for step in range(length):
            cluster = favourites[np.arange(n_users), rng.integers(0, 2, n_users)]
            wander = rng.random(n_users) < 0.2
            cluster[wander] = rng.integers(0, CLUSTERS, int(wander.sum()))
            subcats = cluster[:, None] * SUB_PER_CLUSTER + np.arange(SUB_PER_CLUSTER)[None, :]
            logits = np.einsum("bsd,bd->bs", self.subcat_taste[subcats], taste) + rng.gumbel(size=subcats.shape)
            out[:, step] = self._items_of(rng, subcats[np.arange(n_users), logits.argmax(axis=1)])
        return out


def _towers(dim: int):
    import tensorflow as tf

    def table(size: int) -> tf.keras.layers.Embedding:
        return tf.keras.layers.Embedding(size, 32)

    item_tables = [table(CLUSTERS), table(SUBCATS), table(BRANDS)]
    query_tables = [table(CLUSTERS), table(SUBCATS), table(BRANDS)]
    item_mlp = tf.keras.Sequential([tf.keras.layers.Dense(128, "relu"), tf.keras.layers.Dense(dim)])
    query_mlp = tf.keras.Sequential([tf.keras.layers.Dense(128, "relu"), tf.keras.layers.Dense(dim)])

    def item_tower(feats: Tuple) -> tf.Tensor:
        cluster, subcat, brand, quality = feats
        parts = [t(x) for t, x in zip(item_tables, (cluster, subcat, brand))] + [quality[:, None]]
        return item_mlp(tf.concat(parts, axis=1))

    def query_tower(history: Tuple) -> tf.Tensor:
        pooled = [tf.reduce_mean(t(x), axis=1) for t, x in zip(query_tables, history)]
        return query_mlp(tf.concat(pooled, axis=1))

    return item_tower, query_tower, (item_tables, query_tables, item_mlp, query_mlp)


def trained_vectors(n_items: int, dim: int, n_queries: int, train_users: int, steps: int,
                    seed: int) -> Tuple[np.ndarray, np.ndarray, Dict[str, float]]:
    """(item vectors [n_items, dim], query vectors [n_queries, dim], training facts)."""
    import tensorflow as tf

    tf.random.set_seed(seed)
    world = World(n_items, seed)
    rng = np.random.default_rng(seed + 1)
    sequences = world.users(rng, train_users, HISTORY + 1)
    item_tower, query_tower, parts = _towers(dim)
    features = lambda rows: (world.cluster[rows], world.subcat[rows], world.brand[rows])  # noqa: E731
    optimizer = tf.keras.optimizers.Adam(0.003)

    @tf.function
    def step(history, target):
        with tf.GradientTape() as tape:
            logits = tf.matmul(query_tower(history), item_tower(target), transpose_b=True)
            labels = tf.range(tf.shape(logits)[0])
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        variables = [v for group in parts for layer in (group if isinstance(group, list) else [group])
                     for v in layer.trainable_variables]
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    start, losses = time.perf_counter(), []
    for _ in range(steps):
        batch = sequences[rng.integers(0, train_users, 1024)]
        target = batch[:, HISTORY]
        losses.append(float(step(features(batch[:, :HISTORY]), (*features(target), world.quality[target]))))
    train_s = time.perf_counter() - start
    rows = np.arange(n_items)
    items = np.concatenate([item_tower((*features(rows[i:i + 65536]), world.quality[rows[i:i + 65536]])).numpy()
                            for i in range(0, n_items, 65536)])
    fresh = world.users(rng, n_queries, HISTORY + 1)
    queries = query_tower(features(fresh[:, :HISTORY])).numpy()
    facts = {"train_s": train_s, "traces": step.experimental_get_tracing_count(), "first_loss": float(np.mean(losses[:20])), "last_loss": float(np.mean(losses[-20:])),
             "next_items": fresh[:, HISTORY]}
    return items.astype(np.float32), queries.astype(np.float32), facts


def _time_per_query(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, batch: int,
                    n_queries: int) -> Tuple[float, float, np.ndarray]:
    """(wall seconds per query, CPU seconds per query (all threads of this process), [n_queries, K]
    ids) of searching `queries` in batches of `batch`."""
    search(queries[:batch])  # warm up (tracing, caches)
    found, start, cpu = [], time.perf_counter(), time.process_time()
    for i in range(0, n_queries, batch):
        found.append(search(queries[i:i + batch]))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return wall / n_queries, cpu / n_queries, np.concatenate(found)


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each query's exact top-K found by the approximate search."""
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)]))


def measure(name: str, items: np.ndarray, queries: np.ndarray, args) -> List[Dict[str, object]]:
    """Table rows of brute force and of ScaNN at each leaves_to_search on one catalog."""
    import tensorflow as tf
    from scann import scann_ops

    matrix = tf.constant(items)
    brute = tf.function(lambda q: tf.math.top_k(tf.matmul(q, matrix, transpose_b=True), k=K)[1],
                        input_signature=[tf.TensorSpec([None, items.shape[1]], tf.float32)])
    brute_search = lambda q: brute(q).numpy()  # noqa: E731
    b1, c1, _ = _time_per_query(brute_search, queries, 1, args.batch1_queries)
    b64, c64, exact = _time_per_query(brute_search, queries, 64, len(queries))
    rows = [{"catalog": name, "index": "brute force", "leaves_to_search": None, "reorder": None, "recall": 1.0,
             "ms_b1": b1 * 1e3, "ms_b64": b64 * 1e3, "cpu_ms_b1": c1 * 1e3, "cpu_ms_b64": c64 * 1e3}]
    start = time.perf_counter()
    searcher = (scann_ops.builder(items, K, "dot_product")
                .tree(num_leaves=args.num_leaves, num_leaves_to_search=args.leaves[0], training_iterations=12)
                .score_ah(2).reorder(max(args.reorder)).build())
    build_s = time.perf_counter() - start
    for reorder in args.reorder:
        for leaves in args.leaves:
            def search(q, leaves=leaves, reorder=reorder):
                return searcher.search_batched_parallel(q, final_num_neighbors=K, leaves_to_search=leaves,
                                                        pre_reorder_num_neighbors=reorder).indices.numpy()
            s1, c1, _ = _time_per_query(search, queries, 1, args.batch1_queries)
            s64, c64, found = _time_per_query(search, queries, 64, len(queries))
            rows.append({"catalog": name, "index": "scann", "leaves_to_search": leaves, "reorder": reorder,
                         "recall": recall(found, exact), "ms_b1": s1 * 1e3, "ms_b64": s64 * 1e3,
                         "cpu_ms_b1": c1 * 1e3, "cpu_ms_b64": c64 * 1e3, "build_s": build_s})
    for row in rows:
        row["speedup_b1"] = rows[0]["ms_b1"] / row["ms_b1"]
        row["speedup_b64"] = rows[0]["ms_b64"] / row["ms_b64"]
    return rows


def print_table(rows: List[Dict[str, object]]) -> None:
    print(f"| catalog | index | leaves_to_search | reorder | recall@{K} | ms/query b1 | speed-up b1 | ms/query b64 "
          "| speed-up b64 | CPU ms/query b1 | CPU ms/query b64 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        leaves, reorder = ("", "") if r["index"] != "scann" else (r["leaves_to_search"], r["reorder"])
        print(f"| {r['catalog']} | {r['index']} | {leaves} | {reorder} | {r['recall']:.3f} | {r['ms_b1']:.2f} | "
              f"{r['speedup_b1']:.1f}x | {r['ms_b64']:.3f} | {r['speedup_b64']:.1f}x | {r['cpu_ms_b1']:.2f} | "
              f"{r['cpu_ms_b64']:.3f} |")


def plot(rows: List[Dict[str, object]], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, title in zip(axes, ("ms_b1", "ms_b64"), ("batch 1", "batch 64")):
        for catalog, marker in (("trained", "o"), ("random", "s")):
            brute = [r for r in rows if r["catalog"] == catalog and r["index"] == "brute force"]
            for reorder in sorted({r["reorder"] for r in rows if r["index"] == "scann"}):
                scann = [r for r in rows if r["catalog"] == catalog and r["reorder"] == reorder]
                if not scann:
                    continue
                line, = ax.plot([r[key] for r in scann], [r["recall"] for r in scann], marker=marker,
                                label=f"ScaNN, {catalog}, reorder {reorder}")
                for r in scann:
                    ax.annotate(str(r["leaves_to_search"]), (r[key], r["recall"]), fontsize=7)
            if brute:
                ax.scatter([brute[0][key]], [1.0], marker="*", s=120, label=f"brute force, {catalog}")
        ax.axhline(0.95, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("ms per query (log)")
        ax.set_ylabel(f"recall@{K} of brute force")
        ax.set_title(f"{title} (labels: leaves_to_search)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=512, help="queries searched at batch 64 (recall)")
    parser.add_argument("--batch1-queries", type=int, default=128, help="queries timed one at a time")
    parser.add_argument("--num-leaves", type=int, default=1000)
    parser.add_argument("--leaves", type=int, nargs="+", default=[10, 25, 50, 100, 200])
    parser.add_argument("--reorder", type=int, nargs="+", default=[500, 2000],
                        help="candidates re-scored exactly (one index, built for the largest)")
    parser.add_argument("--train-users", type=int, default=100_000)
    parser.add_argument("--train-steps", type=int, default=600)
    parser.add_argument("--catalogs", nargs="+", default=["trained", "random"], choices=["trained", "random"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default="benchmarks/results")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: List[Dict[str, object]] = []
    facts: Dict[str, float] = {}
    for catalog in args.catalogs:
        if catalog == "trained":
            items, queries, facts = trained_vectors(args.items, args.dim, args.queries, args.train_users,
                                                    args.train_steps, args.seed)
            hits = _hits(items, queries, facts.pop("next_items"))
            facts["next_item_hit_rate_at_100"] = float(hits)
            print(f"trained two-tower: {args.train_steps} steps of 1024 in {facts['train_s']:.0f}s, in-batch "
                  f"softmax loss {facts['first_loss']:.2f} -> {facts['last_loss']:.2f}; fresh users' next item in "
                  f"the exact top-{K} of {args.items:,}: {hits:.1%} (chance {K / args.items:.4%})", flush=True)
        else:
            rng = np.random.default_rng(args.seed + 2)
            items = rng.normal(size=(args.items, args.dim)).astype(np.float32)
            queries = rng.normal(size=(args.queries, args.dim)).astype(np.float32)
        rows += measure(catalog, items, queries, args)
        print_table([r for r in rows if r["catalog"] == catalog])
        print(f"ScaNN index build ({catalog}): {rows[-1]['build_s']:.0f}s", flush=True)
    print(f"\n{args.items:,} items x {args.dim}, top-{K}, num_leaves {args.num_leaves}; "
          f"{args.queries} queries at batch 64, {args.batch1_queries} at batch 1")
    print_table(rows)
    for r in rows:
        if r["index"] == "scann":
            ok = r["recall"] >= 0.95 and r["speedup_b1"] >= 5 and r["speedup_b64"] >= 5
            r["target_met"] = ok
    met = [r for r in rows if r.get("target_met") and r["catalog"] == "trained"]
    print("target (trained: recall@100 >= 0.95 at >= 5x less time per query, batch 1 and 64): "
          + (f"met at (leaves_to_search, reorder) {[(r['leaves_to_search'], r['reorder']) for r in met]}"
             if met else "NOT met"))
    (out / "ann.json").write_text(json.dumps({"args": vars(args), "training": facts, "rows": rows}, indent=2))
    plot(rows, out / "ann.png")
    print(f"wrote {out / 'ann.json'} and {out / 'ann.png'}")
    return 0


def _hits(items: np.ndarray, queries: np.ndarray, next_items: np.ndarray) -> float:
    """Share of queries whose next item is in the exact top-K (chunked: a large catalog)."""
    import tensorflow as tf

    matrix = tf.constant(items)
    hits = 0
    for i in range(0, len(queries), 64):
        top = tf.math.top_k(tf.matmul(queries[i:i + 64], matrix, transpose_b=True), k=K)[1].numpy()
        hits += sum(int(n in t) for n, t in zip(next_items[i:i + 64], top))
    return hits / len(queries)


if __name__ == "__main__":
    raise SystemExit(main())
