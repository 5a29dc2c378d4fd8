"""Per-partition partials: one inbox partition's share of a miner's submission, and their exact merge.

With several validator workers each one holds the inbox partitions it was assigned (every miner's
bucket ``b`` of a date lands in partition ``b mod P``) and checks and counts what arrives there
with its own ``Intake``. When a round closes, each partition sends, per miner, a ``RoundPartial``:
the counted facts and every stored chunk decoded (ids, scores, ranks). Nothing is summarised
lossily: the merge concatenates the chunks in chunk-key order and adds or unites the counts, so
the submissions and facts a closer evaluates are those one worker holding every partition would
have built (``collect_submissions`` and ``Emitter.snapshot``), and the verdicts, weights and
ensemble bytes are the same.

    shares = partials_of(intake, rkey, version, partition)           # one per miner with anything there
    value = encode_partial(codec, share)                            # validator.partials, key share.key
    submissions, facts = merge_partials([decode_partial(codec, v) for v in values])
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from streams.codec import AvroCodec, Decoded
from streams.errors import CodecError
from streams.records import ALERT_SCORE_BATCH, ROUND_PARTIAL, PartialChunk, PartialMarker, RoundPartial
from validator.intake import Intake
from validator.outcome import MinerFacts, content_times
from validator.submissions import Submission
from validator.tables import ALERT, ANY_NETWORK, SEP, RoundKey, StoredChunk, items_with_prefix, miner_key

_MARKER_FIELDS = ("alert_count", "cluster_count", "alert_chunks", "cluster_chunks")


def _millis(value: Any) -> int:
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1000)
    return int(value) if isinstance(value, int | float) else 0


def _chunk_of(
    chunk_id: str, value: Mapping[str, Any], cached: tuple[str, Decoded] | None, codec: AvroCodec, seen_at: int
) -> PartialChunk | None:
    """One stored chunk, decoded: what ``collect_submissions`` takes from it."""
    stored = StoredChunk.from_value(value)
    if cached is not None and cached[0] == stored.position:
        record = cached[1]
    else:
        try:
            record = codec.decode(stored.data)
        except CodecError:  # decoded once on arrival: a corrupted table (``collect_submissions`` skips it too)
            return None
    body = record.record
    alert = record.name == ALERT_SCORE_BATCH
    ids = body["alert_ids"] if alert else body["cluster_ids"]
    return PartialChunk(
        chunk_id=chunk_id,
        kind=chunk_id.split(SEP, 1)[0],
        ids=tuple(str(i) for i in ids),
        scores=tuple(float(s) for s in body["scores"]),
        ranks=tuple(float(r) for r in body["ranks"]) if alert else (),
        model_version=str(body.get("model_version", "")),
        produced_at=_millis(body.get("produced_at")),
        position=stored.position,
        seen_at=seen_at,
    )


def partials_of(intake: Intake, rkey: RoundKey, version: int, partition: int, codec: AvroCodec) -> list[RoundPartial]:
    """Every miner's share of ``rkey`` held by ``intake`` (one partition's tables), by miner id."""
    tables = intake.tables
    chunks: dict[str, list[PartialChunk]] = {}
    stats = {key.split(SEP)[2]: value for key, value in items_with_prefix(tables.stats, rkey.prefix)}
    seen = {miner: content_times(value) for miner, value in stats.items()}
    for key, value in items_with_prefix(tables.chunks, rkey.prefix):
        parts = key.split(SEP)
        miner, chunk_id = parts[2], SEP.join(parts[3:])
        chunk = _chunk_of(chunk_id, value, intake.decoded.get(key), codec, seen.get(miner, {}).get(chunk_id, 0))
        if chunk is not None:
            chunks.setdefault(miner, []).append(chunk)
    dlq = {
        key.split(SEP)[2]: len(value.get("dlq", []))
        for key, value in items_with_prefix(tables.stats, miner_key(rkey.date, ANY_NETWORK, ""))
    }
    shares = []
    for miner in sorted(set(chunks) | set(stats) | {m for m, n in dlq.items() if n}):
        st = stats.get(miner) or {}
        marker = st.get("complete")
        shares.append(
            RoundPartial(
                network=rkey.network,
                processing_date=rkey.date,
                version=version,
                partition=partition,
                miner_id=miner,
                marker=_wire_marker(marker) if marker else None,
                firsts={str(k): int(v) for k, v in sorted(dict(st.get("firsts") or {}).items())},
                resubmissions=len(st.get("resubmitted", [])),
                nondeterministic=tuple(sorted(st.get("nondeterministic", []))),
                late_records=len(st.get("late", [])),
                dead_letters=dlq.get(miner, 0),
                chunks=tuple(chunks.get(miner, [])),
            )
        )
    return shares


def _size(chunk: PartialChunk) -> int:
    """About how many bytes a chunk takes in a ``RoundPartial`` (ids, 8-byte scores and ranks)."""
    return 64 + len(chunk.position) + sum(len(i) + 2 for i in chunk.ids) + 8 * (len(chunk.scores) + len(chunk.ranks))


def split_partial(share: RoundPartial, max_bytes: int) -> list[RoundPartial]:
    """The share in pieces of at most about ``max_bytes`` of chunks (a broker caps a record's size).

    The first piece carries the facts and the marker, the others only chunks, so the merge of the
    pieces is the merge of the share (counts added once, chunks concatenated in key order).
    """
    pieces: list[list[PartialChunk]] = [[]]
    used = 0
    for chunk in share.chunks:
        size = _size(chunk)
        if pieces[-1] and used + size > max_bytes:
            pieces.append([])
            used = 0
        pieces[-1].append(chunk)
        used += size
    first = dataclasses.replace(share, chunks=tuple(pieces[0]))
    bare = RoundPartial(
        network=share.network,
        processing_date=share.processing_date,
        version=share.version,
        partition=share.partition,
        miner_id=share.miner_id,
    )
    return [first, *(dataclasses.replace(bare, chunks=tuple(p)) for p in pieces[1:])]


# ---- the wire ----------------------------------------------------------------------------------


def _wire_marker(m: Mapping[str, Any]) -> PartialMarker:
    """A stored completion marker as the partial carries it (``first_seen`` is the merge's to find)."""
    return PartialMarker(
        position=str(m["position"]),
        **{name: int(m[name]) for name in _MARKER_FIELDS},
        checksum=str(m["checksum"]),
        model_versions=dict(sorted(dict(m.get("model_versions") or {}).items())),
        produced_at=int(m.get("produced_at", 0)),
        seen_at=int(m["seen_at"]),
        arrived_after=int(m.get("arrived_after", 0)),
    )


def encode_partial(codec: AvroCodec, share: RoundPartial) -> bytes:
    return codec.encode(ROUND_PARTIAL, share.to_avro())


def decode_partial(codec: AvroCodec, value: bytes) -> RoundPartial:
    """A ``RoundPartial`` from its bytes; ``CodecError`` if it is something else."""
    decoded = codec.decode(value)
    if decoded.name != ROUND_PARTIAL:
        msg = f"expected {ROUND_PARTIAL}, got {decoded.name}"
        raise CodecError(msg)
    return RoundPartial.from_avro(decoded.record)


def digest(value: bytes) -> str:
    """What a partition's ``ready`` step names a partial by."""
    return hashlib.sha256(value).hexdigest()


# ---- the merge ---------------------------------------------------------------------------------
def _order(position: str) -> tuple[str, int, int]:
    topic, partition, offset = position.rsplit(":", 2)
    return topic, int(partition), int(offset)


def _marker_of(shares: list[RoundPartial]) -> dict[str, Any] | None:
    """The completion marker as one worker would hold it: the last one seen (trusted time, then
    position), its first-seen time the earliest marker of the date with the same checksum."""
    markers = [s.marker for s in shares if s.marker is not None]
    if not markers:
        return None
    chosen = max(markers, key=lambda m: (m.seen_at, m.position)).to_avro()
    checksum = str(chosen["checksum"])
    firsts = [int(s.firsts[checksum]) for s in shares if checksum in s.firsts]
    chosen["first_seen"] = min([*firsts, int(chosen["seen_at"])])
    return chosen


def merge_partials(shares: Iterable[RoundPartial]) -> tuple[dict[str, Submission], dict[str, MinerFacts]]:
    """Submissions (chunks concatenated in chunk-key order) and facts (counts added) of one round.

    The shares are of one round and version: per (miner, partition) one share or its pieces
    (``split_partial``; pieces hold disjoint chunks, only the first holds facts). A chunk id held
    by two partitions (its key routed it apart from its body's bucket) counts once, as the later
    source position, plus one resubmission: one worker would have replaced it.
    """
    by_miner: dict[str, list[RoundPartial]] = {}
    for share in shares:
        by_miner.setdefault(share.miner_id, []).append(share)
    submissions: dict[str, Submission] = {}
    facts: dict[str, MinerFacts] = {}
    for miner in sorted(by_miner):
        group = sorted(by_miner[miner], key=lambda s: s.partition)
        chunks: dict[str, PartialChunk] = {}
        extra = 0
        for share in group:
            for chunk in share.chunks:
                held = chunks.get(chunk.chunk_id)
                if held is not None:
                    extra += 1
                    if _order(held.position) >= _order(chunk.position):
                        continue
                chunks[chunk.chunk_id] = chunk
        marker = _marker_of(group)
        if chunks:
            sub = Submission(miner)
            for chunk_id in sorted(chunks):
                chunk = chunks[chunk_id]
                sub.model_versions.add(chunk.model_version)
                sub.last_produced_ms = max(sub.last_produced_ms, chunk.produced_at)
                if chunk.kind == ALERT:
                    sub.alert_ids.extend(chunk.ids)
                    sub.alert_scores.extend(chunk.scores)
                    sub.alert_ranks.extend(chunk.ranks)
                    sub.alert_chunks += 1
                else:
                    sub.cluster_ids.extend(chunk.ids)
                    sub.cluster_scores.extend(chunk.scores)
                    sub.cluster_chunks += 1
            submissions[miner] = sub
        facts[miner] = MinerFacts(
            marker=marker,
            content_seen={cid: c.seen_at for cid, c in chunks.items() if c.seen_at},
            resubmissions=sum(s.resubmissions for s in group) + extra,
            determinism_violations=len(set().union(*(s.nondeterministic for s in group))),
            late_records=sum(s.late_records for s in group),
            dead_letters=sum(s.dead_letters for s in group),
        )
    return submissions, facts
