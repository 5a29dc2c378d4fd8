"""Replay a date: re-announce its batch (miners re-score) or have the validator re-read its scores.

Either way the validator emits a new ensemble version for that date only; ClickHouse keeps the
newest version (ReplacingMergeTree), so the gateway shows it and other dates are untouched.

    replay_from_sot(store, producer, topics, "ethereum", date(2026, 1, 2), operator_signer(stack))
    replay_from_scores(producer, topics, "ethereum", date(2026, 1, 2), operator_signer(stack))
"""

from __future__ import annotations

import datetime as dt
import hashlib

from streams.batch import DEFAULT_WINDOW_DAYS, MANIFEST, Manifest, batch_key, snapshot_key
from streams.control import request_replay
from streams.errors import EventError, ObjectStoreError, StackError
from streams.kafka import BatchProducer
from streams.objectstore import ObjectStore
from streams.signing import REANNOUNCE, Signer
from streams.topics import TopicNames


def replay_from_sot(
    store: ObjectStore,
    producer: BatchProducer,
    topics: TopicNames,
    network: str,
    date: dt.date,
    signer: Signer,
    window_days: int = DEFAULT_WINDOW_DAYS,
) -> Manifest:
    """Re-emit the object-created event of the date's manifest on ``sot.batches``, signed by the operator."""
    key = snapshot_key(network, date, window_days, MANIFEST)
    try:
        body = store.get(key)
        manifest = Manifest.from_json(body)
    except (ObjectStoreError, EventError) as exc:
        msg = f"no published batch {network} {date} to replay: {exc}"
        raise StackError(msg) from exc
    etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
    # announced now: the validator's deadline and latency of the new round count from here
    event = store.object_created_event(key, len(body), etag, dt.datetime.now(dt.UTC))
    key = batch_key(network, date)
    producer.send(topics.sot_batches, key, event, headers=signer.headers(REANNOUNCE, key, event, date=date))
    producer.flush()
    return manifest


def replay_from_scores(
    producer: BatchProducer,
    topics: TopicNames,
    network: str,
    date: dt.date,
    signer: Signer,
    *,
    reweigh: bool = False,
) -> None:
    """Ask the validator (operator-signed) to re-read the date from the miner topics and emit a new version.

    The new version keeps the weights' priors of the version it replays; ``reweigh`` applies today's.
    """
    request_replay(producer, topics, network, date, signer, reweigh=reweigh)
