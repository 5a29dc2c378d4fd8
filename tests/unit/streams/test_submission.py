from __future__ import annotations

import datetime as dt
import hashlib
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import submission
from streams.errors import SubmissionError
from streams.submission import complete_key, rank_by_score, score_key, split_into_chunks, submission_checksum


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


def test_checksum_worked_example_of_the_protocol_document() -> None:
    # docs/miner-protocol.md: two alerts and one cluster, entries in id byte order, alerts first
    # fmt: off
    entries = [
        "61" "08000000" "616c6572742d3130" "9a9999999999b93f",  # a, len 8, "alert-10", 0.1
        "61" "07000000" "616c6572742d32" "000000000000e03f",  # a, len 7, "alert-2", 0.5
        "63" "03000000" "632d31" "000000000000f03f",  # c, len 3, "c-1", 1.0
    ]
    # fmt: on
    expected = hashlib.sha256(bytes.fromhex("".join(entries))).hexdigest()
    assert expected == "9ccfc480989083223cc5fd1a39b107f98a440987c19693d9441583c8a2214d8e"
    assert submission_checksum(["alert-2", "alert-10"], [0.5, 0.1], ["c-1"], [1.0]) == expected
    assert submission_checksum([], []) == hashlib.sha256(b"").hexdigest()
    assert submission_checksum(["x"], [-0.0]) == submission_checksum(["x"], [0.0])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_checksum_refuses_scores_that_are_not_finite(bad: float) -> None:
    with pytest.raises(SubmissionError, match="NaN or infinite"):
        submission_checksum(["x", "y"], [0.5, bad])
    with pytest.raises(SubmissionError, match="2 alert ids but 1 scores"):
        submission_checksum(["x", "y"], [0.5])


def test_ranks_by_score_then_id_in_code_point_order() -> None:
    ids = ["b", "a", "c", "B", "é"]
    ranks = rank_by_score(ids, np.array([0.5, 0.5, 0.9, 0.5, 0.5]))
    # 0.9 first; the 0.5 ties by code point: "B" < "a" < "b" < "é"
    assert ranks.tolist() == [4, 3, 1, 2, 5]
    assert rank_by_score([], np.array([])).tolist() == []


def _reference_checksum(ids: list[str], scores: list[float], cids: list[str], cscores: list[float]) -> str:
    """The rule of docs/miner-protocol.md, entry by entry, as a miner in any language would write it."""
    digest = hashlib.sha256()
    for tag, kind_ids, kind_scores in ((b"a", ids, scores), (b"c", cids, cscores)):
        entries = sorted((i.encode(), s + 0.0) for i, s in zip(kind_ids, kind_scores, strict=True))
        for entity, score in entries:
            digest.update(tag + struct.pack("<I", len(entity)) + entity + struct.pack("<d", score))
    return digest.hexdigest()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.text(max_size=12), st.floats(allow_nan=False, allow_infinity=False)), max_size=40),
    st.lists(st.tuples(st.text(max_size=5), st.sampled_from([0.0, -0.0, 0.5, 1.0])), max_size=10),
)
def test_the_batch_checksum_equals_the_entry_by_entry_rule(
    alerts: list[tuple[str, float]], clusters: list[tuple[str, float]]
) -> None:
    ids, scores = [a for a, _ in alerts], [s for _, s in alerts]  # repeated ids and any unicode included
    cids, cscores = [c for c, _ in clusters], [s for _, s in clusters]
    assert submission_checksum(ids, scores, cids, cscores) == _reference_checksum(ids, scores, cids, cscores)


def test_the_checksum_laid_out_in_slices_is_the_entry_by_entry_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    ids = [f"{'aé'[i % 2]}-{rng.integers(0, 40)}" for i in range(50)]  # repeated ids, two-byte characters
    scores = [float(s) for s in rng.random(50)]
    expected = _reference_checksum(ids, scores, ["c-1", "c-0"], [0.5, -0.0])
    for entries in (1, 3, 49, 50):
        monkeypatch.setattr(submission, "ENTRY_SLICE", entries)
        assert submission_checksum(ids, scores, ["c-1", "c-0"], [0.5, -0.0]) == expected
