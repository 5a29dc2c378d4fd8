"""A partitioned worker closes rounds through its own steps and keeps only the retained dates."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
import zlib
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from validator_fakes import make_settings

from simulation import adversarial_panel, make_batch, submission_records, write_batch
from streams.codec import AvroCodec
from streams.objectstore import FileObjectStore
from streams.signing import INBOX, REGISTRATION, Signer
from validator.bridge import InboxRecord
from validator.partials import encode_partial, partials_of
from validator.retention import expired
from validator.state import RoundState
from validator.steps import CLOSE, PARTIALS_PURPOSE, PROGRESS, STEPS_PURPOSE, Step, decode_step, encode_step, signed
from validator.tables import RoundKey, date_of_key
from validator.workers import PartitionedWorker

MINERS = ["honest-1", "random"]
PARTITIONS = 2
RETENTION = 2
FIRST = dt.date(2026, 1, 1)


class _Message:
    def __init__(self, topic: str, partition: int, offset: int, key: Any, value: bytes | None, headers: Any) -> None:
        self._topic, self._partition, self._offset = topic, partition, offset
        self._key = key.encode() if isinstance(key, str) else key
        self._value, self._headers = value, list(headers or [])

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[Any]:
        return self._headers


class _Broker:
    """Topics as lists of messages: what the worker sends, its reader reads back in order."""

    def __init__(self) -> None:
        self.topics: dict[str, list[_Message]] = {}
        self.read: dict[str, int] = {}

    def send(self, topic: str, key: Any, value: bytes | None, headers: Any = None) -> None:
        log = self.topics.setdefault(topic, [])
        log.append(_Message(topic, 0, len(log), key, value, headers))

    def flush(self, timeout: float = 60.0) -> None:
        pass

    def consume(self, count: int, timeout: float = 0.0) -> list[_Message]:
        out = []
        for topic, log in self.topics.items():
            out += log[self.read.get(topic, 0) :]
            self.read[topic] = len(log)
        return out


class _Inbox:
    """The inbox partitions the worker holds, as the bridge fills them."""

    def __init__(self) -> None:
        self.logs: dict[int, list[_Message]] = {p: [] for p in range(PARTITIONS)}
        self.pending: list[_Message] = []

    def put(self, topic: str, partition: int, message: _Message) -> None:
        log = self.logs[partition]
        m = _Message(topic, partition, len(log), message.key(), message.value(), message.headers())
        log.append(m)
        self.pending.append(m)

    def consume(self, count: int, timeout: float = 0.0) -> list[_Message]:
        out, self.pending = self.pending, []
        return out

    def committed(self, partitions: list[Any], timeout: float = 0.0) -> list[Any]:
        return [confluent_kafka.TopicPartition(tp.topic, tp.partition, -1001) for tp in partitions]

    def get_watermark_offsets(self, tp: Any, timeout: float = 0.0, cached: bool = False) -> tuple[int, int]:
        return 0, len(self.logs[tp.partition])

    def commit(self, offsets: list[Any], asynchronous: bool = True) -> None:
        pass


def _partition(key: str) -> int:
    tail = key.rsplit(":", 1)[-1]
    return int(tail) % PARTITIONS if tail.isdigit() else zlib.crc32(key.encode()) % PARTITIONS


Made = tuple[PartitionedWorker, _Broker, _Inbox]


@pytest.fixture
def make_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    def make(**overrides: Any) -> Made:
        broker, inbox = _Broker(), _Inbox()
        monkeypatch.setattr("validator.closer.BatchProducer", lambda servers: broker)
        values = {"expected_miners": MINERS, "retention_days": RETENTION, "close_when_caught_up": False, **overrides}
        w = PartitionedWorker(make_settings(tmp_path, **values))
        w.inbox, w.reader, w.partitions = inbox, broker, PARTITIONS
        w._assigned(inbox, [confluent_kafka.TopicPartition(w.topics.validator_inbox, p) for p in range(PARTITIONS)])
        return w, broker, inbox

    return make


@pytest.fixture
def worker(make_worker: Any) -> Made:
    made: Made = make_worker()
    return made


def _forward(w: PartitionedWorker, inbox: _Inbox, key: str, value: bytes, source: str, offset: int) -> None:
    """One miner record as the bridge forwards it (signed, source position in the headers)."""
    record = InboxRecord(key.encode(), value, source, 0, offset)
    headers = [*record.headers(), *w.signer.headers(INBOX, key, value, batch_id=record.position)]
    inbox.put(w.topics.validator_inbox, _partition(key), _Message("", 0, 0, key, value, headers))


def _run_date(
    w: PartitionedWorker,
    broker: _Broker,
    inbox: _Inbox,
    codec: AvroCodec,
    day: dt.date,
    miners: list[str] = MINERS,
    opened_ms: int | None = None,
    now_ms: int | None = None,
) -> None:
    """Announce a date (at ``opened_ms``), forward the miners' records, and loop the worker (its clock
    at ``now_ms``; default: when the date opened) until the round is done."""
    store = FileObjectStore(Path(w.settings.stack.object_store_url.removeprefix("file://")))
    at = dt.datetime.combine(day, dt.time(6), tzinfo=dt.UTC)
    at = at if opened_ms is None else dt.datetime.fromtimestamp(opened_ms / 1000, dt.UTC)
    batch = make_batch(60, day, seed=day.day, published_at=at)
    broker.send(w.topics.sot_batches, None, store.object_created_event(write_batch(store, batch), 1, "etag", at))
    panel = adversarial_panel(batch, seed=day.day)
    for miner in miners:
        source = w.topics.miner_scores(miner)
        for offset, (key, value) in enumerate(submission_records(codec, batch, miner, *panel[miner], at, chunk_size=8)):
            _forward(w, inbox, key, value, source, offset)
    text = RoundKey(day, batch.network).text
    for _ in range(50):
        w._read_shared()
        w._read_inbox()
        w.step(int(at.timestamp() * 1000) if now_ms is None else now_ms)
        if text in w.finished:
            return
    raise AssertionError(f"round {text} not done")


def _dates(w: PartitionedWorker) -> dict[str, set[dt.date]]:
    """The dates of everything the worker keeps per round or date."""
    found: dict[str, set[dt.date]] = {}

    def add(name: str, keys: Any) -> None:
        found.setdefault(name, set()).update(d for d in (date_of_key(str(k)) for k in keys) if d is not None)

    add("ledgers", w.ledgers)
    add("finished", w.finished)
    add("sent", (s[0] for s in w.sent))
    add("ensembles", w.ensembles)
    add("outcomes", w.closer.outcomes)
    add("closer sent", (s[0] for s in w.closer.sent))
    add("partials", (day.isoformat() for day, _ in w.partials.values()))
    for held in w.held.values():
        add("first", held.first)
        add("decoded", held.intake.decoded)
        for name in ("chunks", "stats", "index", "ensembles", "results"):
            add(name, getattr(held.intake.tables, name))
    return found


def test_a_worker_keeps_only_the_retained_dates(
    worker: tuple[PartitionedWorker, _Broker, _Inbox], codec: AvroCodec
) -> None:
    w, broker, inbox = worker
    days = [FIRST + dt.timedelta(days=i) for i in range(RETENTION + 3)]
    for day in days:
        _run_date(w, broker, inbox, codec, day)
    kept = set(days[-RETENTION - 1 :])  # the newest date and the retention before it, as one worker keeps
    held = _dates(w)
    assert held["finished"] == held["ledgers"] == kept
    assert all(dates <= kept for dates in held.values()), held
    assert held["partials"] and held["first"] and held["stats"]
    manifests = {RoundState.from_value(w.shared.batches[RoundKey(d, "ethereum").text]).manifest_key for d in kept}
    assert w.contents and set(w.contents) <= manifests
    assert len(broker.topics[w.topics.ensemble_batches]) == len(days)  # every round closed and emitted
    assert len(broker.topics[w.topics.ensemble_alerts]) == 60 * len(days)
    assert len(w.shared.batches) == len(days)  # round states are kept, as one worker keeps them (small)


def test_a_late_step_partial_or_record_of_an_expired_date_is_ignored(
    worker: tuple[PartitionedWorker, _Broker, _Inbox], codec: AvroCodec, caplog: pytest.LogCaptureFixture
) -> None:
    w, broker, inbox = worker
    days = [FIRST + dt.timedelta(days=i) for i in range(RETENTION + 2)]
    for day in days:
        _run_date(w, broker, inbox, codec, day)
    old = days[0]
    assert expired(old, w.cutoff)
    rkey = RoundKey(old, "ethereum")
    late = Step(rkey.network, old, 1, PROGRESS, 0, read_until_ms=1, offset=99)
    value = encode_step(codec, late)
    for _ in range(2):  # the second one is ignored quietly
        broker.send(w.topics.validator_steps, late.key, value, signed(w.signer, STEPS_PURPOSE, late.key, value, old))
    share = partials_of(w.held[1].intake, RoundKey(days[-1], "ethereum"), 1, 1, codec)[0]
    share = dataclasses.replace(share, processing_date=old)
    value = encode_partial(codec, share)
    headers = signed(w.signer, PARTIALS_PURPOSE, share.key, value, old)
    broker.send(w.topics.validator_partials, share.key, value, headers)
    batch = make_batch(60, old, seed=old.day)
    alerts, clusters = adversarial_panel(batch, seed=1)["honest-1"]
    key, value = submission_records(codec, batch, "honest-1", alerts, clusters, batch.published_at)[0]
    _forward(w, inbox, key, value, w.topics.miner_scores("honest-1"), 999)
    steps = len(broker.topics[w.topics.validator_steps])
    with caplog.at_level(logging.INFO, logger="validator.workers"):
        w._read_shared()
        w._read_inbox()
        w.step(int(dt.datetime.combine(days[-1], dt.time(7), tzinfo=dt.UTC).timestamp() * 1000))
    assert old not in set().union(*_dates(w).values())
    ignored = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(ignored) == 3, ignored  # one line per kind and expired date
    assert len(broker.topics[w.topics.validator_steps]) == steps  # nothing done again for it


def _register(w: PartitionedWorker, broker: _Broker, codec: AvroCodec, miner: Signer) -> None:
    """A signed registration of ``miner`` on the registry topic."""
    value = codec.encode(
        "riskstream.MinerRegistration",
        {"miner_id": miner.name, "profile": "honest-a", "networks": ["ethereum"], "model_versions": {},
         "registered_at": dt.datetime.now(dt.UTC), "public_key": miner.public_key},
    )  # fmt: skip
    key = miner.name.encode()
    broker.send(w.topics.miner_registry, key, value, miner.headers(REGISTRATION, key, value))


def _close(w: PartitionedWorker, broker: _Broker, codec: AvroCodec, day: dt.date) -> Step:
    steps = [decode_step(codec, m.value() or b"") for m in broker.topics[w.topics.validator_steps]]
    return next(s for s in steps if s.step == CLOSE and s.date == day)


def _registered(make_worker: Any, codec: AvroCodec, **settings: Any) -> tuple[PartitionedWorker, _Broker, Any]:
    """A worker expecting honest-1 that has read the registrations of ghost and random (with keys on the list)."""
    signers = {m: Signer(Ed25519PrivateKey.generate(), m) for m in ["ghost", "honest-1", "random"]}
    keys = {m: s.public_key for m, s in signers.items()}
    w, broker, inbox = make_worker(expected_miners=["honest-1"], miner_keys=keys, **settings)
    for name in ("ghost", "random"):
        _register(w, broker, codec, signers[name])
    w._read_shared()
    return w, broker, inbox


def test_a_round_waits_for_the_registered_miners_that_are_active(make_worker: Any, codec: AvroCodec) -> None:
    """As one worker's roster: configured or registered, until it misses ``missed_rounds`` in a row."""
    w, broker, inbox = _registered(make_worker, codec, miner_missed_rounds=2)
    assert set(w.shared.registry) == {"ghost", "random"}
    opened = int(time.time() * 1000) + 1000  # after the registrations
    closes = []
    for i in range(3):  # ghost registered and never submits
        day = FIRST + dt.timedelta(days=i)
        at = opened + i * 1000
        _run_date(w, broker, inbox, codec, day, opened_ms=at, now_ms=at + 31_000)  # past the deadline
        closes.append(_close(w, broker, codec, day))
    assert [(c.trigger, c.expected) for c in closes] == [
        ("deadline", ("ghost", "honest-1", "random")),  # registered and alive: waited for until the deadline
        ("deadline", ("ghost", "honest-1", "random")),  # one round missed
        ("all_complete", ("honest-1", "random")),  # two in a row: no longer waited for
    ]


def test_a_miner_silent_past_the_heartbeat_timeout_is_not_waited_for_unless_it_is_submitting(
    make_worker: Any, codec: AvroCodec
) -> None:
    w, broker, inbox = _registered(make_worker, codec, heartbeat_timeout_s=60)
    later = int(time.time() * 1000) + 120_000  # both registrations are older than the timeout
    _run_date(w, broker, inbox, codec, FIRST, opened_ms=later, now_ms=later)
    close = _close(w, broker, codec, FIRST)
    assert (close.trigger, close.expected) == ("all_complete", ("honest-1", "random"))  # random is sending
