"""The synthetic MovieLens-like data set: interactions drawn from the planted `World`.

Each user draws their interactions of a span at once, without repeating an item: items are
sampled (Gumbel top-k) with probability proportional to ``popularity * (OFF_TASTE_AFFINITY +
user's weight on the item's taste)``. Ratings are whole stars from 1 to 5: ``RATING_BASE +
RATING_SCALE * affinity + item quality + noise``, rounded and clipped.

Time: span ``s`` covers two years starting ``s * SPAN_SECONDS`` after `START_TIMESTAMP`, cut
into ``num_interactions`` equal slots. Interaction ``j`` (users in order, each user's in a
row) takes slot ``(a * j + b) mod n`` with ``a`` coprime to ``n`` (a permutation, so every
slot is used once; ``a`` near ``0.618 n`` spreads each user's interactions over the two
years), and its timestamp is a random second inside that slot. The newest
``round(eval_fraction * n)`` slots are eval, so the cutoff time is known before anything is
drawn and each user's later interactions fall into eval. Each user has their own seeded
random stream, so the data do not depend on the chunk size.

Memory: one chunk of rows (plus one user's rows, at most ``num_items``) and the world.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from typing import Iterator, List, Optional

import numpy as np

from core import features
from ingest import encoding, split, writer
from ingest import world as world_lib
from ingest.config import SyntheticDataConfig
from ingest.report import REPORT_FILE, DataReport

logger = logging.getLogger(__name__)

START_TIMESTAMP = 1_546_300_800  # 2019-01-01T00:00:00Z
SPAN_SECONDS = 730 * 86_400
RATING_BASE = 2.4
RATING_SCALE = 2.4
RATING_NOISE_SD = 0.7
DEFAULT_CHUNK_ROWS = 100_000
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclasses.dataclass(frozen=True)
class InteractionChunk:
    """Up to ``chunk_rows`` generated interactions, as arrays (user and item are codes)."""

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray
    is_eval: np.ndarray

    def __len__(self) -> int:
        return len(self.user)


@dataclasses.dataclass(frozen=True)
class Timeline:
    """How interaction numbers map to time in one span (see the module docstring)."""

    total: int
    multiplier: int
    offset: int
    step: int
    start: int
    n_train: int

    @property
    def cutoff(self) -> int:
        """Train timestamps are <= cutoff < eval timestamps."""
        return self.start + self.n_train * self.step - 1


def timeline(cfg: SyntheticDataConfig, span: int) -> Timeline:
    """The time slots of one span of a config.

    Args:
      cfg: the config.
      span: the span number (>= 0).

    Returns:
      The timeline.
    """
    total = cfg.num_interactions
    multiplier = max(1, int(round(_GOLDEN * total)))
    while math.gcd(multiplier, total) != 1:
        multiplier += 1
    offset = int(np.random.default_rng([cfg.seed, 2, span]).integers(total))
    return Timeline(
        total=total,
        multiplier=multiplier,
        offset=offset,
        step=max(1, SPAN_SECONDS // total),
        start=START_TIMESTAMP + span * SPAN_SECONDS,
        n_train=total - split.eval_count(total, cfg.eval_fraction),
    )


def iter_chunks(cfg: SyntheticDataConfig, span: int = 0, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                planted: Optional[world_lib.World] = None) -> Iterator[InteractionChunk]:
    """Generates the interactions of one span, chunk by chunk.

    Args:
      cfg: the config.
      span: the span number; spans share the world but not the interactions.
      chunk_rows: the most rows a chunk holds.
      planted: the world of `cfg`, when the caller has already built it.

    Returns:
      An iterator of chunks of at most `chunk_rows` rows, users in order.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    world = planted if planted is not None else world_lib.build_world(cfg)
    times = timeline(cfg, span)
    log_popularity = np.log(world.item_popularity)
    pending: List[InteractionChunk] = []
    pending_rows = 0
    first_index = 0
    for user, count in enumerate(world.user_interactions.tolist()):
        if count == 0:
            continue
        rows = _user_rows(cfg, world, times, log_popularity, span, user, count, first_index)
        first_index += count
        pending.append(rows)
        pending_rows += count
        while pending_rows >= chunk_rows:
            merged = _concat(pending)
            yield _slice(merged, 0, chunk_rows)
            pending = [_slice(merged, chunk_rows, len(merged))]
            pending_rows = len(merged) - chunk_rows
    if pending_rows:
        yield _concat(pending)


def _user_rows(cfg: SyntheticDataConfig, world: world_lib.World, times: Timeline, log_popularity: np.ndarray,
               span: int, user: int, count: int, first_index: int) -> InteractionChunk:
    rng = np.random.default_rng([cfg.seed, 1, span, user])
    affinity = world.user_taste[user][world.item_taste]
    keys = (log_popularity + world_lib.TASTE_SHARPNESS * np.log(world_lib.OFF_TASTE_AFFINITY + affinity)
            + rng.gumbel(size=len(affinity)))
    chosen = np.sort(np.argpartition(-keys, count - 1)[:count]) if count < len(keys) else np.arange(len(keys))
    rng.shuffle(chosen)
    indices = np.arange(first_index, first_index + count, dtype=np.int64)
    slots = np.sort((times.multiplier * indices + times.offset) % times.total)
    timestamps = times.start + slots * times.step + rng.integers(times.step, size=count)
    stars = RATING_BASE + RATING_SCALE * affinity[chosen] + world.item_quality[chosen]
    stars = np.clip(np.rint(stars + rng.normal(0.0, RATING_NOISE_SD, size=count)), 1, 5)
    return InteractionChunk(
        user=np.full(count, user, dtype=np.int64),
        item=chosen.astype(np.int64),
        rating=stars.astype(np.float32),
        timestamp=timestamps.astype(np.int64),
        is_eval=slots >= times.n_train,
    )


def _concat(chunks: List[InteractionChunk]) -> InteractionChunk:
    if len(chunks) == 1:
        return chunks[0]
    return InteractionChunk(*(np.concatenate([getattr(c, f.name) for c in chunks])
                              for f in dataclasses.fields(InteractionChunk)))


def _slice(chunk: InteractionChunk, start: int, stop: int) -> InteractionChunk:
    return InteractionChunk(*(getattr(chunk, f.name)[start:stop] for f in dataclasses.fields(InteractionChunk)))


def generate_synthetic(out_dir: str, cfg: SyntheticDataConfig = SyntheticDataConfig(), span: int = 0,
                       chunk_rows: int = DEFAULT_CHUNK_ROWS,
                       rows_per_file: int = writer.DEFAULT_ROWS_PER_FILE) -> DataReport:
    """Writes one span of the synthetic data set and the item catalog.

    Args:
      out_dir: the output folder.
      cfg: sizes, tastes, eval fraction and seed.
      span: the span number; later spans continue in time with new interactions.
      chunk_rows: rows generated and held in memory at a time.
      rows_per_file: rows per part file of a split.

    Returns:
      The report (also written to ``<out_dir>/data_report.json``).

    Raises:
      ConfigError: the config is invalid.
    """
    world = world_lib.build_world(cfg)
    users = [encoding.user_block(uid, int(age), gender, occupation) for uid, age, gender, occupation in zip(
        world.user_ids, world.user_age.tolist(), world.user_gender, world.user_occupation)]
    items = [encoding.item_block(iid, title, genres, int(year)) for iid, title, genres, year in zip(
        world.item_ids, world.item_title, world.item_genres, world.item_year.tolist())]
    encoder = encoding.InteractionEncoder()
    items_seen = np.zeros(cfg.num_items, dtype=bool)
    os.makedirs(out_dir, exist_ok=True)
    with writer.SpanWriter(out_dir, span, rows_per_file) as span_writer:
        for chunk in iter_chunks(cfg, span, chunk_rows, planted=world):
            items_seen[chunk.item] = True
            for user, item, rating, timestamp, is_eval in zip(
                chunk.user.tolist(), chunk.item.tolist(), chunk.rating.tolist(),
                chunk.timestamp.tolist(), chunk.is_eval.tolist(),
            ):
                split_name = features.EVAL_SPLIT if is_eval else features.TRAIN_SPLIT
                span_writer.write(split_name, encoder.encode(users[user], items[item], rating, timestamp))
            logger.info("generated %d of %d interactions", sum(span_writer.rows_written.values()),
                        cfg.num_interactions)
    catalog = {iid: encoding.wrap_example(block) for iid, block in zip(world.item_ids, items)}
    catalog_rows = writer.write_catalog(out_dir, catalog, keep_existing=span > 0)
    report = DataReport(
        source=(f"synthetic(seed={cfg.seed}, users={cfg.num_users}, items={cfg.num_items}, "
                f"interactions={cfg.num_interactions}, tastes={cfg.num_tastes})"),
        format="synthetic",
        span=span,
        rows_read=cfg.num_interactions,
        rows_written=dict(span_writer.rows_written),
        users=int(np.count_nonzero(world.user_interactions)),
        items=int(items_seen.sum()),
        catalog_rows=catalog_rows,
        cutoff_timestamp=timeline(cfg, span).cutoff,
        eval_fraction=cfg.eval_fraction,
    )
    report.to_json(os.path.join(out_dir, REPORT_FILE))
    return report


def planted_truth(cfg: SyntheticDataConfig) -> world_lib.World:
    """The planted world behind `generate_synthetic(cfg)`: tastes, popularity, features.

    Args:
      cfg: the config.

    Returns:
      The world (not written into the canonical data).
    """
    return world_lib.build_world(cfg)
