"""Validation of interaction events: accepted forms, defaults, and errors naming index and field."""

from __future__ import annotations

import pytest

from core import features as F
from online import events as E

NOW = 1_700_000_000.0


def _event(**overrides):
    event = {F.USER_ID: "u1", F.ITEM_ID: "i1", F.RATING: 4.5, F.TIMESTAMP: 1_600_000_000}
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not None}


def _problems(payload, **kwargs):
    with pytest.raises(E.EventValidationError) as info:
        E.parse_batch(payload, NOW, **kwargs)
    return {(p.index, p.field) for p in info.value.problems}, str(info.value)


def test_accepts_a_single_object_a_list_and_an_events_batch():
    single = E.parse_batch(_event(event_id="a"), NOW)
    listed = E.parse_batch([_event(event_id="a")], NOW)
    batch = E.parse_batch({E.EVENTS_KEY: [_event(event_id="a"), _event(event_id="b", item_id="i2")]}, NOW)
    assert single == listed == batch[:1]
    assert [e.item_id for e in batch] == ["i1", "i2"]
    assert batch[0] == E.Event("a", "u1", "i1", E.RATING_TYPE, 4.5, 1_600_000_000)


def test_defaults_timestamp_id_and_implicit_rating():
    ids = iter(["gen-1", "gen-2"])
    out = E.parse_batch([_event(timestamp=None, rating=None, type="purchase"), _event()], NOW,
                        id_factory=lambda: next(ids))
    assert out[0].timestamp == int(NOW)
    assert out[0].rating == E.IMPLICIT_RATINGS["purchase"]
    assert out[0].event_type == "purchase"
    assert [e.event_id for e in out] == ["gen-1", "gen-2"]


def test_side_features_are_kept_and_split_by_owner():
    (event,) = E.parse_batch(_event(user_age=30, user_gender="F", item_title="New (2024)", item_year=2024), NOW)
    assert event.user_side() == {F.USER_AGE: 30, F.USER_GENDER: "F"}
    assert event.item_side() == {F.ITEM_TITLE: "New (2024)", F.ITEM_YEAR: 2024}
    assert E.Event.from_record(event.to_record()) == event


@pytest.mark.parametrize("field, value", [
    (F.RATING, 9.0), (F.RATING, "4"), (F.RATING, float("nan")), (F.RATING, True),
    (F.USER_ID, ""), (F.USER_ID, "  "), (F.USER_ID, 12), (F.ITEM_ID, "a\nb"), (F.ITEM_ID, "x" * 300),
    (F.TIMESTAMP, -1), (F.TIMESTAMP, 1.5), (F.TIMESTAMP, int(NOW) + 10 * 86_400),
    (E.EVENT_TYPE, "like"), (E.EVENT_ID, "has space"), (F.USER_AGE, 500), (F.USER_AGE, False),
    (F.ITEM_YEAR, "1999"), (F.USER_GENDER, ""), ("colour", "red"),
])
def test_each_bad_field_is_named_with_its_event_index(field, value):
    found, message = _problems([_event(), _event(**{field: value})])
    assert found == {(1, field)}
    assert "event 1" in message and repr(field) in message


def test_missing_required_fields_and_rating_rules():
    found, _ = _problems([{F.ITEM_ID: "i"}, _event(rating=None), _event(type="view")])
    assert found == {(0, F.USER_ID), (0, F.RATING), (1, F.RATING), (2, F.RATING)}


def test_every_problem_of_a_batch_is_reported_and_nothing_is_returned():
    found, message = _problems([_event(rating=0.1), _event(), _event(user_id="", item_year=-3)])
    assert found == {(0, F.RATING), (2, F.USER_ID), (2, F.ITEM_YEAR)}
    assert message.startswith("3 invalid event field(s)")


@pytest.mark.parametrize("payload, field", [
    ("text", None), ({E.EVENTS_KEY: "x"}, E.EVENTS_KEY), ({E.EVENTS_KEY: []}, E.EVENTS_KEY),
    ({E.EVENTS_KEY: [], "extra": 1}, "extra"), ([3], None),
])
def test_malformed_batches(payload, field):
    found, _ = _problems(payload)
    assert {f for _, f in found} == {field}


def test_batch_size_limit():
    found, message = _problems([_event()] * 4, max_events=3)
    assert found == {(None, E.EVENTS_KEY)} and "at most 3" in message
