"""MirroredStrategy training throughput of the retrieval model on the visible GPUs.

    python -m benchmarks.gpu_mirrored [--batch 16384] [--steps 300] [--out results.json]

Self-contained (no pipeline run needed): random transformed features with MovieLens-1M-like
vocabulary sizes, held in memory, so the input pipeline is not the bottleneck. Variants: the
default single-device strategy, MirroredStrategy over every visible GPU, and MirroredStrategy
with mixed_float16 and with XLA. Each fits `--steps` steps after a warm-up call and prints
examples/second. Exits with an error when no GPU is visible.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Dict

import numpy as np


def random_features(n: int, vocab, seed: int) -> Dict[str, np.ndarray]:
    """`n` examples of random transformed features within `vocab` (Zipf-distributed items)."""
    from core import features as F

    rng = np.random.default_rng(seed)
    return {
        F.USER_ID_XF: rng.integers(0, vocab.users, n),
        F.USER_AGE_XF: rng.integers(0, vocab.age_buckets, n),
        F.USER_GENDER_XF: rng.integers(0, vocab.genders, n),
        F.USER_OCCUPATION_XF: rng.integers(0, vocab.occupations, n),
        F.USER_HISTORY: rng.integers(0, vocab.items + 1, (n, F.HISTORY_LENGTH)),  # item index + 1, 0 pads
        F.TIMESTAMP_XF: rng.random(n).astype(np.float32),
        F.ITEM_ID_XF: rng.zipf(1.3, n) % vocab.items,
        F.ITEM_YEAR_XF: rng.integers(0, vocab.year_buckets, n),
        F.ITEM_GENRES_XF: rng.integers(0, vocab.genres, (n, F.MAX_GENRES)),
        F.ITEM_TITLE_XF: rng.integers(0, vocab.title_tokens, (n, F.MAX_TITLE_TOKENS)),
    }


def run_variant(name: str, strategy, cfg, vocab, data: Dict[str, np.ndarray], steps: int) -> Dict[str, float]:
    """Examples/second of `steps` train steps of one variant (after a warm-up fit)."""
    import tensorflow as tf

    from trainer import distribution, train

    dataset = tf.data.Dataset.from_tensor_slices(data).batch(cfg.batch_size, drop_remainder=True)
    dataset = dataset.cache().repeat().prefetch(tf.data.AUTOTUNE)
    with strategy.scope(), distribution.precision_scope(distribution.resolve_precision(cfg.mixed_precision, "GPU")):
        model = train.build_retrieval(vocab, cfg, None)
    model.fit(dataset, epochs=1, steps_per_epoch=2 * cfg.steps_per_execution, verbose=0)  # trace / compile
    start = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    seconds = time.perf_counter() - start
    rate = steps * cfg.batch_size / seconds
    print(f"{name:<28} {strategy.num_replicas_in_sync:>8} {rate:>14,.0f}", flush=True)
    return {"replicas": strategy.num_replicas_in_sync, "examples_per_s": rate, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16384)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", help="JSON file for the results")
    args = parser.parse_args()
    from core.process import set_up_process

    set_up_process()
    import tensorflow as tf

    from trainer.config import TrainerConfig
    from trainer.towers import Vocabularies

    gpus = tf.config.list_logical_devices("GPU")
    if not gpus:
        raise SystemExit("no GPU visible: this benchmark needs one")
    vocab = Vocabularies(users=6041, items=3707, genders=3, occupations=22, genres=19, title_tokens=5001,
                         age_buckets=7, year_buckets=12)
    data = random_features(args.batch * 20, vocab, seed=0)
    base = TrainerConfig(batch_size=args.batch, lr_scaling="sqrt", steps_per_execution=10)
    variants = (
        ("default strategy (1 GPU)", tf.distribute.get_strategy(), base),
        ("mirrored", tf.distribute.MirroredStrategy(), base),
        ("mirrored + mixed_float16", tf.distribute.MirroredStrategy(), dataclasses.replace(base, mixed_precision="mixed_float16")),
        ("mirrored + XLA", tf.distribute.MirroredStrategy(), dataclasses.replace(base, jit_compile=True)),
    )
    print(f"{len(gpus)} GPU(s): {[g.name for g in gpus]}; batch {args.batch}, {args.steps} steps")
    print(f"{'variant':<28} {'replicas':>8} {'examples/s':>14}")
    results = {name: run_variant(name, strategy, cfg, vocab, data, args.steps) for name, strategy, cfg in variants}
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump({"gpus": [g.name for g in gpus], "batch": args.batch, "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
