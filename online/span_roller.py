"""Rolls the event log into new ExampleGen spans of the canonical data, exactly once.

A roll takes the events after the committed offset, joins the side features of their users
and items (`online.profiles`), splits them by time (the newest `eval_fraction` to eval, ties
broken by log order) and writes them as the next span,
``<data>/interactions/span-<N>/{train,eval}/part-*.tfrecord.gz``, with the canonical writer
(`ingest.SpanWriter`); items outside the catalog are added to
``<data>/items/items.tfrecord.gz``. The pipeline then reads the newest spans with its rolling
range config (``PipelineConfig.span_window``).

Idempotence: the roll's plan (span number, sequence range) is stored in ``roller.json`` in the
log folder before anything is written, and the committed offset moves only after the span and
the catalog are published. A roll interrupted anywhere is redone from the plan: the span is
rewritten whole (the writer replaces a span atomically), so each event lands in exactly one
span. ``roller.json`` also lists every rolled span with its sequence range, which tells the
learner which events its base data already holds.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Dict, List, Optional

from core import durable_files
from core import features as F
from online import profiles
from online.config import RollerConfig
from online.event_log import LoggedEvent, LogReader

_LOG = logging.getLogger(__name__)
STATE_FILE = "roller.json"
LOCK_FILE = "ROLLER.LOCK"


@dataclasses.dataclass(frozen=True)
class RollResult:
    """What a roll did: the span written (None: not enough new events), its range and rows."""

    span: Optional[int]
    start_seq: int
    end_seq: int
    rows: Dict[str, int]
    new_items: int


def roller_state(log_dir: str) -> Dict:
    """The roller's state: ``committed_seq``, ``pending`` plan or None, ``spans`` rolled."""
    return durable_files.read_json(os.path.join(log_dir, STATE_FILE), {"committed_seq": 0, "pending": None, "spans": []})


def rolled_end_seq(log_dir: str, spans: List[int]) -> int:
    """End of the newest sequence range rolled into any of `spans` (0 when none was rolled)."""
    ends = [s["end_seq"] for s in roller_state(log_dir)["spans"] if s["span"] in set(spans)]
    return max(ends, default=0)


def _read_range(log_dir: str, start: int, end: Optional[int]) -> List[LoggedEvent]:
    events = LogReader(log_dir).read(start_seq=start)
    return [e for e in events if end is None or e.seq < end]


def _encode_rows(events: List[LoggedEvent], users: Dict[str, profiles.UserProfile],
                 items: Dict[str, profiles.ItemProfile], eval_fraction: float) -> Dict[str, List[bytes]]:
    from ingest import encoding, split

    ordered = sorted(events, key=lambda e: (e.event.timestamp, e.seq))
    n_eval = split.eval_count(len(ordered), eval_fraction)
    user_blocks = {u: encoding.user_block(u, *p) for u, p in users.items()}
    item_blocks = {i: encoding.item_block(i, *p) for i, p in items.items()}
    encoder = encoding.InteractionEncoder()
    rows: Dict[str, List[bytes]] = {F.TRAIN_SPLIT: [], F.EVAL_SPLIT: []}
    for position, logged in enumerate(ordered):
        event = logged.event
        split_name = F.EVAL_SPLIT if position >= len(ordered) - n_eval else F.TRAIN_SPLIT
        rows[split_name].append(encoder.encode(user_blocks[event.user_id], item_blocks[event.item_id],
                                               event.rating, event.timestamp))
    return rows


class SpanRoller:
    """Rolls the log in `log_dir` into spans under `data_root` (see the module docstring).

    Args:
      log_dir: the event log folder (the roller's state lives there too).
      data_root: the canonical data folder the pipeline reads.
      config: the roll threshold, eval fraction and profile look-back.
    """

    def __init__(self, log_dir: str, data_root: str, config: RollerConfig = RollerConfig()) -> None:
        self.log_dir = log_dir
        self.data_root = data_root
        self.config = config

    def roll(self, force: bool = False) -> RollResult:
        """Rolls the new events into the next span (or redoes an interrupted roll).

        Args:
          force: roll even when fewer than `config.min_events` new events are waiting (but
            never an empty span).

        Returns:
          The result; `span` is None when nothing was rolled.
        """
        with durable_files.exclusive_lock(os.path.join(self.log_dir, LOCK_FILE)):
            state = roller_state(self.log_dir)
            plan = state["pending"]
            if plan is None:
                start = state["committed_seq"]
                reader = LogReader(self.log_dir)
                events = reader.read(start_seq=start)
                if not events or (len(events) < self.config.min_events and not force):
                    return RollResult(None, start, start, {}, 0)
                spans = profiles.span_numbers(self.data_root)
                plan = {"span": (spans[-1] + 1) if spans else 0, "start_seq": start, "end_seq": reader.next_seq}
                state["pending"] = plan
                durable_files.write_json_atomically(os.path.join(self.log_dir, STATE_FILE), state)
            else:
                _LOG.warning("redoing the interrupted roll of span %d", plan["span"])
                events = _read_range(self.log_dir, plan["start_seq"], plan["end_seq"])
            result = self._write(plan, events)
            state["committed_seq"] = plan["end_seq"]
            state["pending"] = None
            state["spans"] = [s for s in state["spans"] if s["span"] != plan["span"]] + [
                {**plan, "rows": result.rows, "new_items": result.new_items}]
            durable_files.write_json_atomically(os.path.join(self.log_dir, STATE_FILE), state)
            return result

    def _write(self, plan: Dict, events: List[LoggedEvent]) -> RollResult:
        from ingest import encoding, writer

        catalog = profiles.catalog_items(self.data_root)
        wanted = {e.event.user_id for e in events}
        known = profiles.span_user_profiles(self.data_root, wanted, self.config.lookback_spans)
        users, new_items = profiles.describe((e.event for e in events), known, catalog)
        items = {**{i: catalog[i] for i in {e.event.item_id for e in events} if i in catalog}, **new_items}
        rows = _encode_rows(events, users, items, self.config.eval_fraction)
        print(f"[roll] span {plan['span']}: events {plan['start_seq']}..{plan['end_seq'] - 1} "
              f"({len(rows[F.TRAIN_SPLIT])} train, {len(rows[F.EVAL_SPLIT])} eval, {len(new_items)} new items)", flush=True)
        with writer.SpanWriter(self.data_root, plan["span"]) as span_writer:
            for split_name, examples in rows.items():
                span_writer.write_all(split_name, examples)
        if new_items:
            writer.write_catalog(self.data_root, {
                i: encoding.wrap_example(encoding.item_block(i, *p)) for i, p in new_items.items()
            }, keep_existing=True)
        return RollResult(plan["span"], plan["start_seq"], plan["end_seq"],
                          {k: len(v) for k, v in rows.items()}, len(new_items))
