from __future__ import annotations

import datetime as dt

from streams.submission import complete_key, score_key, split_into_chunks, submission_checksum


def test_chunks_cover_every_id_once_in_stable_buckets() -> None:
    ids = [f"alert-{i}" for i in range(1000)]
    seen: list[str] = []
    for bucket, chunk, positions in split_into_chunks(ids, buckets=8, chunk_size=50):
        assert 0 <= bucket < 8 and chunk >= 0 and 0 < len(positions) <= 50
        seen.extend(ids[p] for p in positions)
    assert sorted(seen) == sorted(ids)
    # the same id lands in the same bucket whatever the other ids are
    first = {ids[p]: b for b, _, ps in split_into_chunks(ids, 8, 50) for p in ps}
    subset = ids[::7]
    again = {subset[p]: b for b, _, ps in split_into_chunks(subset, 8, 50) for p in ps}
    assert all(first[i] == b for i, b in again.items())


def test_checksum_ignores_order_but_not_values() -> None:
    a = submission_checksum(["x", "y"], [0.1, 0.2], ["c"], [0.5])
    assert a == submission_checksum(["y", "x"], [0.2, 0.1], ["c"], [0.5])
    assert a != submission_checksum(["x", "y"], [0.1, 0.2000001], ["c"], [0.5])


def test_keys_lead_with_the_date() -> None:
    assert score_key(dt.date(2026, 1, 2), 3) == "2026-01-02:0003"
    assert complete_key(dt.date(2026, 1, 2)) == "2026-01-02:complete"
