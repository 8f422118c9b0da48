"""Rolling the event log into canonical spans: features, split, catalog, idempotence, ExampleGen."""

from __future__ import annotations

import collections
import os

import pytest

from core import durable_files
from core import features as F
from online import span_roller
from online.config import RollerConfig
from online.event_log import EventLog
from online.events import Event

SPAN0_USERS = {"u1": (30, "F", "writer"), "u2": (41, "M", "artist")}
CATALOG = {"i1": ("One (1990)", "Drama", 1990), "i2": ("Two (1991)", "Comedy", 1991)}


@pytest.fixture
def data_root(tmp_path):
    """Span 0 with two users and the two-item catalog, as an import would write them."""
    from ingest import encoding, writer

    root = str(tmp_path / "data")
    encoder = encoding.InteractionEncoder()
    with writer.SpanWriter(root, 0) as span:
        for n, (user, profile) in enumerate(SPAN0_USERS.items()):
            row = encoder.encode(encoding.user_block(user, *profile), encoding.item_block("i1", *CATALOG["i1"]), 4.0, 100 + n)
            span.write(F.TRAIN_SPLIT, row)
    writer.write_catalog(root, {i: encoding.wrap_example(encoding.item_block(i, *p)) for i, p in CATALOG.items()})
    return root


def _event(n, user, item, **side):
    return Event(f"e{n}", user, item, "rating", 3.0 + n % 2, 1_000 + n, tuple(side.items()))


def _rows(root, span, split):
    from ingest import writer

    return list(writer.read_examples(writer.split_pattern(root, span, split)))


def test_roll_joins_features_splits_by_time_and_extends_the_catalog(tmp_path, data_root):
    log_dir = str(tmp_path / "log")
    EventLog(log_dir).append([
        _event(0, "u1", "i2"),
        _event(1, "u3", "new-item", **{F.ITEM_TITLE: "Fresh (2024)", F.ITEM_YEAR: 2024}),
        _event(2, "u3", "i1", **{F.USER_AGE: 22, F.USER_GENDER: "F"}),
        _event(3, "u2", "bare-item"),
        _event(4, "u1", "i1"),
    ], 1.0)
    result = span_roller.SpanRoller(log_dir, data_root, RollerConfig(min_events=5, eval_fraction=0.4)).roll()
    assert (result.span, result.start_seq, result.end_seq, result.new_items) == (1, 0, 5, 2)
    train, evals = _rows(data_root, 1, F.TRAIN_SPLIT), _rows(data_root, 1, F.EVAL_SPLIT)
    assert [r[F.TIMESTAMP] for r in train] == [1000, 1001, 1002] and [r[F.TIMESTAMP] for r in evals] == [1003, 1004]
    by_time = {r[F.TIMESTAMP]: r for r in train + evals}
    assert (by_time[1000][F.USER_AGE], by_time[1000][F.USER_OCCUPATION]) == (30, "writer")  # from span 0
    assert by_time[1000][F.ITEM_TITLE] == "Two (1991)"  # from the catalog
    # u3's profile after all its events, on every u3 row; unknown occupation.
    assert {(by_time[t][F.USER_AGE], by_time[t][F.USER_GENDER], by_time[t][F.USER_OCCUPATION]) for t in (1001, 1002)} == {(22, "F", F.UNKNOWN_TOKEN)}
    assert (by_time[1001][F.ITEM_TITLE], by_time[1001][F.ITEM_GENRES], by_time[1001][F.ITEM_YEAR]) == ("Fresh (2024)", F.NO_GENRES, 2024)
    assert by_time[1003][F.ITEM_TITLE] == F.UNKNOWN_TOKEN
    from ingest import writer

    catalog = {r[F.ITEM_ID]: r for r in writer.read_examples(str(writer.catalog_path(data_root)))}
    assert set(catalog) == {"i1", "i2", "new-item", "bare-item"}
    assert catalog["new-item"][F.ITEM_YEAR] == 2024
    assert span_roller.rolled_end_seq(log_dir, [1]) == 5 and span_roller.rolled_end_seq(log_dir, [0]) == 0


def test_threshold_force_and_consecutive_spans(tmp_path, data_root):
    log_dir = str(tmp_path / "log")
    log = EventLog(log_dir)
    roller = span_roller.SpanRoller(log_dir, data_root, RollerConfig(min_events=3))
    log.append([_event(0, "u1", "i1"), _event(1, "u2", "i2")], 1.0)
    assert roller.roll().span is None
    assert roller.roll(force=True).span == 1
    assert roller.roll(force=True).span is None, "no span without new events"
    log.append([_event(n, "u1", "i2") for n in range(2, 6)], 1.0)
    second = roller.roll()
    assert (second.span, second.start_seq, second.end_seq) == (2, 2, 6)
    assert sum(len(_rows(data_root, 2, s)) for s in (F.TRAIN_SPLIT, F.EVAL_SPLIT)) == 4


def test_an_interrupted_roll_is_redone_into_the_same_span(tmp_path, data_root, monkeypatch):
    log_dir = str(tmp_path / "log")
    EventLog(log_dir).append([_event(n, "u1", f"i{1 + n % 2}") for n in range(6)], 1.0)
    roller = span_roller.SpanRoller(log_dir, data_root, RollerConfig(min_events=1))
    real_write = durable_files.write_json_atomically
    calls = []

    def crash_on_commit(path, value):
        calls.append(value)
        if len(calls) == 2:
            raise OSError("simulated crash before the commit")
        real_write(path, value)

    monkeypatch.setattr(durable_files, "write_json_atomically", crash_on_commit)
    with pytest.raises(OSError, match="simulated"):
        roller.roll()
    monkeypatch.setattr(durable_files, "write_json_atomically", real_write)
    assert os.path.isdir(os.path.join(data_root, "interactions", "span-1")), "the span was published before the crash"
    assert span_roller.roller_state(log_dir)["pending"] == {"span": 1, "start_seq": 0, "end_seq": 6}
    redo = roller.roll()
    assert (redo.span, redo.end_seq) == (1, 6)
    assert not os.path.exists(os.path.join(data_root, "interactions", "span-2"))
    keys = [(r[F.USER_ID], r[F.ITEM_ID], r[F.TIMESTAMP]) for s in (F.TRAIN_SPLIT, F.EVAL_SPLIT) for r in _rows(data_root, 1, s)]
    assert len(keys) == 6 and max(collections.Counter(keys).values()) == 1
    assert span_roller.roller_state(log_dir)["committed_seq"] == 6


def test_example_gen_rolling_range_picks_the_rolled_spans(tmp_path, data_root):
    from tfx.components.example_gen import utils
    from tfx.proto import example_gen_pb2, range_config_pb2

    log_dir = str(tmp_path / "log")
    EventLog(log_dir).append([_event(n, "u2", "i1") for n in range(4)], 1.0)
    span_roller.SpanRoller(log_dir, data_root, RollerConfig(min_events=1)).roll()
    splits = [example_gen_pb2.Input.Split(name=s, pattern=f"span-{{SPAN}}/{s}/*") for s in (F.TRAIN_SPLIT, F.EVAL_SPLIT)]
    _, span, _ = utils.calculate_splits_fingerprint_span_and_version(
        os.path.join(data_root, "interactions"), splits,
        range_config_pb2.RangeConfig(rolling_range=range_config_pb2.RollingRange(num_spans=2)))
    assert span == 1
