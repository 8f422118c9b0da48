"""The online learner: tails the event log, takes small optimiser steps, exports guarded versions.

Loop (`OnlineLearner.run`): read up to `max_events_per_update` new events from the log; apply
them to the tables (`online.online_tables`: new users and items, seen items, histories,
popularity) and run a few Adagrad steps on them plus replayed recent interactions
(`online.optimizer`); once `export_every_events` events are pending, or `export_interval_s`
after the first pending one, evaluate the guard (`online.guard`) and, if it passes, write a
checkpoint (`online.checkpoint`) and publish a new version under the serving directory
(`online.serving_module`, atomically, numbered as the Pusher numbers versions). A blocked
update is undone (its weight changes; the table facts stay) and nothing is exported.

Start: the base is the pipeline's served networks and Transform graph plus the newest spans.
When those networks are a compressed variant (`online.artifacts`), the learner updates that
variant's networks (e.g. the distilled student, not the Trainer's teacher). Int8 embedding
tables are learned as float tables holding their dequantised values and rounded back to the
int8 grid for each export (`online.networks.Int8Grid`); when the variant stores the catalog's
candidate embeddings as int8 (`compression.json`), each export rounds them the same way. So a
version computes what the re-quantised int8 model computes, but stores these tables as float32
(an online version is larger on disk than the pipeline's int8 version). Weights a pruned
variant had set to zero may become non-zero again as they learn. Versions retrieve by brute force
(stock ops): when the pushed model retrieves through a ScaNN index (`retrieval_index.kind:
scann`), the learner says so in one line at start (`online.artifacts.retrieval_note`).
The learner resumes from its latest checkpoint when that was made from the same base and no
foreign version was published since; otherwise it starts from the base and applies the events
after the newest span's range (`online.span_roller.rolled_end_seq`). A rollback copy
(`online.rollback`) makes it continue from its checkpoint of the restored version (or the base)
without re-applying the events in between. A version published by someone else (a pipeline
push) ends `run` with the reason "superseded": restart the learner on the new base.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from core import version_dirs
from online import (artifacts, base_data, checkpoint, guard, networks, online_tables, optimizer, profiles, rollback,
                    span_roller)
from online.config import LearnerConfig
from online.event_log import LogReader
from online.online_sources import InteractionLog, SourceSettings
from online.serving_module import OnlineServingModel, embed_users, request_vocabularies
from trainer.config import TrainerConfig
from trainer import export, inputs, tables
from core import features as F
from compression import int8
from compression.serving_variants import read_marker
from trainer.candidate_ranker import load_ranker
from trainer.item_item_config import ItemItemConfig
from trainer.serving_model import ServingOptions


@dataclasses.dataclass(frozen=True)
class LearnerPaths:
    """Where the learner reads and writes."""

    log_dir: str
    data_root: str
    serving_model_dir: str
    state_dir: str
    trained_dir: str
    transform_dir: str
    ranker_dir: str = ""  # the pushed model's candidate ranker ("": versions order two-tower candidates)
    pushed_model_dir: str = ""  # the pushed SavedModel of the base, read for its retrieval index ("": unknown)


def _newest_profiles(raw: Dict[str, np.ndarray]) -> Dict[str, profiles.UserProfile]:
    order = np.argsort(raw[F.TIMESTAMP], kind="stable")
    return {str(raw[F.USER_ID][i]): (int(raw[F.USER_AGE][i]), str(raw[F.USER_GENDER][i]), str(raw[F.USER_OCCUPATION][i]))
            for i in order}


def _with_eval(base: base_data.BaseData, held: Optional[Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """The transformed base training columns followed by the eval split's (the columns both have)."""
    if held is None:
        return base.train
    return {name: np.concatenate([base.train[name], held[name]]) for name in base.train if name in held}


def _eval_interactions(base: base_data.BaseData, held: Optional[Dict[str, np.ndarray]], tft_output
                       ) -> Tuple[Tuple[np.ndarray, ...], Tuple[np.ndarray, ...]]:
    """(every eval interaction, those with items outside the Transform vocabulary), each as
    (user rows, catalog rows, transformed timestamps); the latter found by raw id
    (`tables.out_of_vocabulary_interactions`), as BuildServingModel finds them."""
    if held is None:
        empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
        return empty, empty
    catalog_keys = base.catalog[F.ITEM_ID]
    in_vocabulary = tables.interaction_rows(held, tft_output, catalog_keys)
    outside = tables.out_of_vocabulary_interactions(base.eval_raw, tft_output, catalog_keys)
    return tuple(np.concatenate(columns) for columns in zip(in_vocabulary, outside)), outside


def _held_out(train: Tuple[np.ndarray, ...], held: Tuple[np.ndarray, ...]) -> Dict[int, set]:
    """User row -> catalog rows of its eval interactions that are not training interactions."""
    trained = set(zip(train[0].tolist(), train[1].tolist()))
    held_out: Dict[int, set] = {}
    for user, row in zip(held[0].tolist(), held[1].tolist()):
        if (user, row) not in trained:
            held_out.setdefault(user, set()).add(row)
    return held_out


class OnlineLearner:
    """See the module docstring. Call `start` once, then `run` (or `step`/`export` in tests).

    Args:
      paths: folders and base artifacts.
      config: the learner settings.
      trainer: the Trainer's hyperparameters (loss options).
      options: serving options of the exported versions.
      model_name: when set, TF Serving warmup requests are written for this model name.
      span_window: newest spans read as the base data (the pipeline's `span_window`).
      clock: Unix time source.
      item_item: the pipeline's item-item settings (the source the candidate ranker may read).
    """

    def __init__(self, paths: LearnerPaths, config: LearnerConfig, trainer: TrainerConfig = TrainerConfig(),
                 options: ServingOptions = ServingOptions(), model_name: Optional[str] = None,
                 span_window: int = 1, clock: Callable[[], float] = time.time,
                 item_item: ItemItemConfig = ItemItemConfig()) -> None:
        self.paths, self.config, self.trainer, self.options = paths, config, trainer, options
        self.item_item = item_item
        self.span_window = span_window
        self.model_name, self.clock = model_name, clock
        self.offset = 0
        self.pending = 0
        self.pending_since: Optional[float] = None
        self.exported: list = []
        self.blocked = 0

    # ---- start ---------------------------------------------------------------------------
    def start(self) -> None:
        """Loads the base, builds the grown networks, tables and guard, and resumes if possible."""
        started = time.time()
        cfg, paths = self.config, self.paths
        tft_output = tft.TFTransformOutput(paths.transform_dir)
        self.layer = tft_output.transform_features_layer()
        vocab = inputs.vocabularies(tft_output)
        trained = export.load_trained(paths.trained_dir)
        marker = read_marker(paths.trained_dir) or {}
        self.int8_candidates = bool(marker.get("int8_candidate_embeddings"))
        extra = {F.USER_ID_XF: cfg.reserve_users, F.ITEM_ID_XF: cfg.reserve_items, F.USER_HISTORY: cfg.reserve_items}
        grown, int8_tables = [], []
        for network in (trained.query_tower, trained.candidate_tower, trained.ranking_model):
            floats, names = networks.dequantized(network)
            grown.append(networks.with_reserved_rows(floats, extra))
            int8_tables.extend(names)
        self.query, self.candidate, self.ranking = grown
        self.grid = networks.Int8Grid.of(grown, int8_tables)
        self.compression_note = self._describe_compression(marker.get("variant", ""), len(self.grid.tables))
        spans = profiles.span_numbers(paths.data_root)[-self.span_window:]
        base = base_data.load(paths.data_root, spans, self.layer)
        catalog_features = tables.transform_catalog(base.catalog, tft_output)
        self.ranker = load_ranker(paths.ranker_dir) if paths.ranker_dir else None
        settings = self._source_settings()
        sourced = {} if settings is None else {"item_item": settings.item_item, "half_life": settings.half_life,
                                               "ease": settings.ease,
                                               "cold_start_half_life": settings.cold_start_half_life}
        # The served tables hold every base interaction, the eval split's too, as the pushed model's do.
        held = base_data.transform(base.eval_raw, self.layer) if len(base.eval_raw[F.USER_ID]) else None
        every = _with_eval(base, held)
        evaluated, outside = _eval_interactions(base, held, tft_output)
        serving = tables.build_tables([every], tft_output, base.catalog, catalog_features, extra_interactions=outside,
                                      **sourced)
        trained = tables.interaction_rows(base.train, tft_output, base.catalog[F.ITEM_ID])
        held_out = _held_out(trained, evaluated)
        log = None if settings is None else InteractionLog(
            *(np.concatenate(columns) for columns in zip(trained, evaluated)))
        self.tables = online_tables.OnlineTables(serving, every, _newest_profiles(base.train_raw), self.layer,
                                                 (vocab.users, vocab.items), (cfg.reserve_users, cfg.reserve_items),
                                                 log, settings, held_out)
        self.optimizer = optimizer.OnlineOptimizer(self.query, self.candidate, self.trainer, cfg.learning_rate,
                                                   vocab.items + cfg.reserve_items)
        self.replay = optimizer.ReplayBuffer({n: base.train[n] for n in self.optimizer.specs}, cfg.replay_size, cfg.seed)
        self._request_vocabularies = request_vocabularies(tft_output)
        self.module = self._new_module(serving)
        self.guard = guard.Guard(base.eval_raw[F.USER_ID], base.eval_raw[F.ITEM_ID], self.tables.user_row,
                                 self.tables.item_row, self.tables.seen, cfg.guard_k, cfg.guard_max_drop,
                                 cfg.guard_users, cfg.seed)
        self.guard.set_reference(*self._served_embeddings(serving), self.tables.seen)
        self.base_id = f"{os.path.abspath(paths.trained_dir)}|{os.path.abspath(paths.transform_dir)}|spans={spans}"
        self._base_state = (self.optimizer.snapshot(), self.tables.clone())
        self._resume(span_roller.rolled_end_seq(paths.log_dir, spans))
        self._snapshot = self.optimizer.snapshot()
        self.reader = LogReader(paths.log_dir)
        guard_note = "no eval data: guard disabled" if self.guard.empty else f"guard slice {len(self.guard.rows)} users, reference recall@{cfg.guard_k} {self.guard.reference:.4f}"
        print(f"[learn] started in {time.time() - started:.1f}s from spans {spans}: {len(self.tables.user_keys)} users, "
              f"{len(self.tables.item_keys)} items; events from seq {self.offset}; {guard_note}", flush=True)
        print(f"[learn] {self.compression_note}", flush=True)
        print(f"[learn] {self._describe_ranker()}", flush=True)
        index_note = artifacts.retrieval_note(paths.pushed_model_dir)
        if index_note:
            print(f"[learn] {index_note}", flush=True)

    def _source_settings(self) -> Optional[SourceSettings]:
        """How the ranker's sources are built, as BuildServingModel built them (None: no ranker)."""
        if self.ranker is None:
            return None
        sources = self.ranker.sources
        return SourceSettings(
            half_life=self.ranker.half_life,
            ease=(self.ranker.ease_items, self.ranker.ease_l2) if "ease" in sources else None,
            item_item=self.item_item if "item_item" in sources else None,
            cold_start_half_life=self.ranker.cold_start_half_life,
        )

    def _describe_ranker(self) -> str:
        if self.ranker is None:
            return "no candidate ranker in the base: versions order the two-tower's candidates (and the rating term)"
        return (f"candidate ranker over {', '.join(self.ranker.sources)}: every source is rebuilt from the base "
                f"and the events at each export (the two-tower from the updated embeddings); the ranker's own "
                f"weights stay the base model's (not updated online)")

    def _new_module(self, serving) -> OnlineServingModel:
        """A serving module for `serving` (with room for the catalog to double before the next one)."""
        return OnlineServingModel(self.query, self.ranking, self._request_vocabularies, self.layer, serving,
                                  self.options, candidate_ranker=self.ranker,
                                  capacity=2 * len(serving.item_keys) + 1)

    def _describe_compression(self, variant: str, int8_tables: int) -> str:
        """What the learner updates and what its versions serve, in one line."""
        if not variant:
            return "networks: float networks without a compression marker (the Trainer's), updated in place"
        text = f"networks: compression variant '{variant}' (the networks the pushed model serves), updated in place"
        if int8_tables:
            text += (f"; its {int8_tables} int8 embedding table(s) are learned as float (their dequantised values) and "
                     "rounded back to the int8 grid on every export")
        if self.int8_candidates:
            text += "; candidate embeddings rounded to int8 as the pipeline serves them"
        if int8_tables or self.int8_candidates:
            text += "; online versions store these tables as float32 (larger on disk than the int8 version)"
        return text

    def _objects(self) -> Dict[str, tf.Module]:
        return {"query": self.query, "candidate": self.candidate, "optimizer": self.optimizer.optimizer}

    def _embeddings(self, serving):
        users = embed_users(self.query, serving.user_features, self.options.context_timestamp)
        return users, tables.embed_catalog(self.candidate, serving.item_features)

    def _served_embeddings(self, serving):
        """User and candidate embeddings as a version serves them (on the int8 grid, if any)."""
        with self.grid.rounded():
            users, candidates = self._embeddings(serving)
        if self.int8_candidates:
            candidates = int8.dequantize_rows(*int8.quantize_rows(candidates))
        return users, candidates

    def _restore(self, version: Optional[int]) -> None:
        """Loads the checkpoint of `version`, or the base state when None."""
        if version is None:
            self.optimizer.restore(self._base_state[0])
            self.tables = self._base_state[1].clone()
        else:
            self.tables, _ = checkpoint.restore(self.paths.state_dir, version, self._objects(), self.layer)

    def _resume(self, spans_end: int) -> None:
        state_dir, serving_dir = self.paths.state_dir, self.paths.serving_model_dir
        latest = checkpoint.latest(state_dir)
        self.own_versions = checkpoint.versions(state_dir)
        newest = (version_dirs.versions(serving_dir) or [None])[-1]
        self.known_newest = newest
        if latest is None or latest["base_id"] != self.base_id:
            self.offset = spans_end
            return
        if newest is None or newest <= latest["version"]:
            self._restore(latest["version"])
            self.offset = latest["applied_seq"]
            return
        marker = rollback.latest_rollback(serving_dir)
        if marker and marker["published"] == newest:
            self._adopt_rollback(marker, latest["applied_seq"])
        else:
            self.offset = spans_end  # a foreign version: start over from the base

    def _adopt_rollback(self, marker: Dict, offset: int) -> None:
        restored = marker["restored"]
        kept = checkpoint.find(self.paths.state_dir, restored)
        usable = kept is not None and kept["base_id"] == self.base_id
        self._restore(restored if usable else None)
        self.offset = offset
        self.known_newest = marker["published"]
        self.own_versions.add(marker["published"])
        checkpoint.save(self.paths.state_dir, marker["published"], self._meta(), self._objects(), self.tables,
                        self.config.keep_checkpoints)
        self._snapshot = self.optimizer.snapshot()
        self.pending, self.pending_since = 0, None
        print(f"[learn] rollback to version {restored} seen (published as {marker['published']}): continuing from "
              f"{'its checkpoint' if usable else 'the base model'}, events before seq {offset} not re-applied", flush=True)

    def _meta(self) -> Dict:
        return {"applied_seq": self.offset, "base_id": self.base_id, "time": self.clock()}

    # ---- loop ----------------------------------------------------------------------------
    def _foreign_version(self) -> Optional[str]:
        """Reacts to versions published by others; returns "superseded" when the learner must stop."""
        newest = (version_dirs.versions(self.paths.serving_model_dir) or [None])[-1]
        if newest is None or newest in self.own_versions or (self.known_newest is not None and newest <= self.known_newest):
            return None
        marker = rollback.latest_rollback(self.paths.serving_model_dir)
        if marker and marker["published"] == newest:
            self._adopt_rollback(marker, self.offset)
            return None
        print(f"[learn] version {newest} was published by someone else (a new pipeline model?): stopping; "
              "restart the learner to continue from the new base", flush=True)
        return "superseded"

    @property
    def exported_weights(self):
        """The networks' weights as of the newest export (what a restart resumes from)."""
        return self._snapshot

    @property
    def base_tables(self):
        """The serving tables of the base model, before any event was applied."""
        return self._base_state[1]

    def step(self) -> int:
        """Reads and applies one round of new events; exports when due. Returns events applied."""
        cfg = self.config
        events = self.reader.read(max_records=cfg.max_events_per_update, start_seq=self.offset)
        if events:
            rows = self.tables.apply([e.event for e in events])
            replay_rows = min(cfg.replay_batch, int(np.ceil(cfg.replay_ratio * len(events))))
            self.optimizer.fit(rows, self.replay, cfg.steps_per_update, replay_rows, self.tables.item_probabilities())
            self.replay.add({n: rows[n] for n in self.optimizer.specs})
            self.offset = events[-1].seq + 1
            self.pending += len(events)
            self.pending_since = self.pending_since or self.clock()
        due = self.pending and (self.pending >= cfg.export_every_events
                                or self.clock() - self.pending_since >= cfg.export_interval_s)
        if due:
            self.export()
        return len(events)

    def export(self) -> Optional[int]:
        """Guards and publishes the pending updates; returns the new version or None if blocked."""
        started = time.time()
        serving = self.tables.serving_tables()
        users, candidates = self._served_embeddings(serving)
        verdict = self.guard.check(users, candidates, self.tables.seen)
        count, self.pending, self.pending_since = self.pending, 0, None
        if not verdict.passed:
            self.optimizer.restore(self._snapshot)
            self.blocked += 1
            print(f"[learn] {verdict.describe(self.config.guard_k)}: {count} events not exported "
                  f"(log offset {self.offset}), weights restored", flush=True)
            return None
        version = version_dirs.next_version(self.paths.serving_model_dir, self.clock())
        self.own_versions.add(version)
        checkpoint.save(self.paths.state_dir, version, self._meta(), self._objects(), self.tables, self.config.keep_checkpoints)
        if not self.module.fits(serving):  # the catalog outgrew the ranker's width: trace a wider module
            self.module = self._new_module(serving)
        self.module.update(serving, users, candidates)
        with self.grid.rounded():  # the networks' int8 tables are saved on the int8 grid
            export.export_serving(self.module, os.path.join(self.paths.serving_model_dir, str(version)),
                                  finalize=self._warmup(serving))
        self.known_newest = version
        self._snapshot = self.optimizer.snapshot()
        self.exported.append(version)
        print(f"[learn] version {version}: {count} new events (log offset {self.offset}), "
              f"{verdict.describe(self.config.guard_k)}, exported in {time.time() - started:.1f}s", flush=True)
        return version

    def _warmup(self, serving) -> Optional[Callable[[str], None]]:
        if not self.model_name:
            return None
        from trainer import warmup_requests as warmup

        users = [u.decode() for u in serving.user_keys[:8]] + ["unknown-user"]
        return lambda tmp_dir: warmup.write_warmup_requests(tmp_dir, self.model_name, users)

    def run(self, max_seconds: Optional[float] = None, max_exports: Optional[int] = None,
            should_stop: Callable[[], bool] = lambda: False) -> str:
        """Runs the loop until a limit, `should_stop()`, or a foreign version.

        Returns:
          Why it stopped: "time", "exports", "stopped" or "superseded".
        """
        end = None if max_seconds is None else time.monotonic() + max_seconds
        while True:
            if should_stop():
                return "stopped"
            if end is not None and time.monotonic() >= end:
                return "time"
            if max_exports is not None and len(self.exported) >= max_exports:
                return "exports"
            if self._foreign_version() == "superseded":
                return "superseded"
            if not self.step():
                time.sleep(self.config.poll_interval_s)
