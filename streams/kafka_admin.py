"""Kafka topics and offsets: create topics, list partitions, offsets by time, high watermarks."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any

import confluent_kafka
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic  # type: ignore[attr-defined]  # re-exported at runtime

from streams.errors import KafkaError
from streams.kafka import LIBRDKAFKA_LOG, client_security


def admin(bootstrap_servers: str) -> AdminClient:
    config: dict[str, Any] = {**client_security(), "bootstrap.servers": bootstrap_servers, "logger": LIBRDKAFKA_LOG}
    return AdminClient(config)


def ensure_topics(
    bootstrap_servers: str,
    names: Iterable[str],
    partitions: int = 4,
    replication: int = 1,
    timeout: float = 30.0,
    config: Mapping[str, str] | None = None,
) -> None:
    """Create the topics that do not exist yet (with ``config``); existing ones are left as they are."""
    client = admin(bootstrap_servers)
    existing = set(list_topics(bootstrap_servers, timeout))
    wanted = [
        NewTopic(n, num_partitions=partitions, replication_factor=replication, config=dict(config or {}))
        for n in names
        if n not in existing
    ]
    if not wanted:
        return
    for name, future in client.create_topics(wanted, request_timeout=timeout).items():
        try:
            future.result(timeout)
        except confluent_kafka.KafkaException as exc:
            if exc.args and exc.args[0].code() == confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            msg = f"cannot create topic {name}: {exc}"
            raise KafkaError(msg) from exc


def topic_config(bootstrap_servers: str, topic: str, timeout: float = 10.0) -> dict[str, str]:
    """The broker's configuration of ``topic`` (name -> value)."""
    resource = ConfigResource("topic", topic)
    try:
        client = admin(bootstrap_servers)  # held until the answer: a collected client cancels it
        entries = client.describe_configs([resource], request_timeout=timeout)[resource].result(timeout)
    except confluent_kafka.KafkaException as exc:
        msg = f"configuration of topic {topic} not read: {exc}"
        raise KafkaError(msg) from exc
    return {name: entry.value for name, entry in entries.items() if entry.value is not None}


def list_topics(bootstrap_servers: str, timeout: float = 10.0) -> list[str]:
    try:
        metadata = admin(bootstrap_servers).list_topics(timeout=timeout)
    except confluent_kafka.KafkaException as exc:
        msg = f"broker {bootstrap_servers} unreachable: {exc}"
        raise KafkaError(msg) from exc
    return sorted(metadata.topics)


def matching_partitions(client: AdminClient, pattern: str, timeout: float = 10.0) -> dict[str, list[int]]:
    """Partitions of every topic whose whole name matches the regular expression ``pattern``.

    Takes the caller's client: one asked every second should not be a new client every second.
    """
    try:
        metadata = client.list_topics(timeout=timeout)
    except confluent_kafka.KafkaException as exc:
        msg = f"topics matching {pattern} not listed: {exc}"
        raise KafkaError(msg) from exc
    wanted = re.compile(pattern)
    return {
        name: sorted(topic.partitions)
        for name, topic in sorted(metadata.topics.items())
        if topic.error is None and wanted.fullmatch(name)
    }


def partitions_of(bootstrap_servers: str, topic: str, timeout: float = 10.0) -> list[int]:
    try:
        metadata = admin(bootstrap_servers).list_topics(topic, timeout=timeout)
    except confluent_kafka.KafkaException as exc:
        msg = f"broker {bootstrap_servers} unreachable: {exc}"
        raise KafkaError(msg) from exc
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        return []
    return sorted(found.partitions)


def offsets_for_time(bootstrap_servers: str, topic: str, when: dt.datetime, timeout: float = 10.0) -> dict[int, int]:
    """First offset per partition at or after ``when`` (-1 = none yet).

    Brokers answer from their own write time; some (the local one) always answer 0, so replay
    by processing date uses the validator's date -> offset index, not this.
    """
    consumer = confluent_kafka.Consumer(
        {
            **client_security(),
            "bootstrap.servers": bootstrap_servers,
            "group.id": "riskstream-offsets",
            "logger": LIBRDKAFKA_LOG,
        }
    )
    try:
        ms = int(when.timestamp() * 1000)
        wanted = [confluent_kafka.TopicPartition(topic, p, ms) for p in partitions_of(bootstrap_servers, topic)]
        found = consumer.offsets_for_times(wanted, timeout=timeout)
    except confluent_kafka.KafkaException as exc:
        msg = f"offsets for time on {topic}: {exc}"
        raise KafkaError(msg) from exc
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in found}


def high_watermarks(bootstrap_servers: str, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """Next offset to be written per partition.

    On the local broker ListOffsets(latest) answers the last *batch's* first offset + 1, not
    the high watermark, so never use this to decide that a partition was read to its end there:
    stop on an in-band marker (e.g. SubmissionComplete) or an idle timeout instead.
    """
    consumer = confluent_kafka.Consumer(
        {
            **client_security(),
            "bootstrap.servers": bootstrap_servers,
            "group.id": "riskstream-offsets",
            "logger": LIBRDKAFKA_LOG,
        }
    )
    try:
        return {
            p: consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p), timeout=timeout)[1]
            for p in partitions_of(bootstrap_servers, topic)
        }
    except confluent_kafka.KafkaException as exc:
        msg = f"watermarks of {topic}: {exc}"
        raise KafkaError(msg) from exc
    finally:
        consumer.close()
