"""Disk staging of cleaned rows: bounded chunks, user buckets, duplicates across flushes."""

import numpy as np

from ingest import cleaning, staging


def test_rows_are_flushed_in_chunks_read_back_in_chunks_and_deduplicated_across_flushes(tmp_path):
    stage = staging.InteractionStage(tmp_path, num_buckets=3, chunk_rows=4)
    rows = [("a", "x", 4.0, 10), ("b", "x", 3.0, 11), ("c", "y", 2.0, 12), ("a", "y", 5.0, 13),
            ("d", "z", 1.0, 14), ("a", "x", 4.0, 10), ("b", "x", 1.0, 20), ("e", "x", 2.0, 15),
            ("a", "z", 3.0, 16), ("c", "z", 2.0, 17)]
    for line, (user, item, rating, ts) in enumerate(rows, start=1):
        stage.add(user, item, rating, ts, line)
    assert stage.rows_staged == 8                     # two full chunks flushed, two rows still buffered
    report = cleaning.CleaningReport()
    kept, low, high = stage.dedup(report, "r.csv")
    # Line 6 repeats line 1 exactly; line 7 is a newer rating of the (b, x) pair of line 2.
    assert (kept, low, high) == (8, 10, 20)
    assert dict(report.dropped) == {cleaning.EXACT_DUPLICATE: 1, cleaning.DUPLICATE_PAIR: 1}
    chunks = list(stage.chunks())
    assert max(len(c) for c in chunks) <= 4
    # At most one chunk (4) or one bucket: the largest is bucket 0 with users a (code 0, four rows
    # before dedup) and d (code 3, one row).
    assert stage.max_rows_in_memory == 5
    merged = np.concatenate(chunks)
    assert sorted(merged["row"].tolist()) == [1, 3, 4, 5, 7, 8, 9, 10]
    assert stage.user_ids == ["a", "b", "c", "d", "e"] and stage.item_ids == ["x", "y", "z"]
    for chunk in chunks:                              # every row of a user is in one bucket
        assert len({int(u) % 3 for u in chunk["user"]}) == 1
    assert sorted(np.concatenate(list(stage.timestamps())).tolist()) == [10, 12, 13, 14, 15, 16, 17, 20]
