"""Subscribe to the ensemble alert scores with plain confluent-kafka, no riskstream code.

The values are Confluent-framed Avro; the schema registry's read API is served by the gateway
(``riskstream gateway serve`` -> http://127.0.0.1:9000), so confluent-kafka's own
``SchemaRegistryClient`` + ``AvroDeserializer`` decode them:

    python consume_ensemble_alerts.py --bootstrap 127.0.0.1:9092 --registry http://127.0.0.1:9000

Each alert is printed as one JSON line. Stops after ``--max-messages`` or ``--idle-seconds`` without records.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    parser.add_argument("--registry", default="http://127.0.0.1:9000", help="schema registry URL (the gateway)")
    parser.add_argument("--topic", default="ensemble.alerts")
    parser.add_argument("--group", default="ensemble-alerts-example")
    parser.add_argument("--max-messages", type=int, default=0, help="stop after this many (0: never)")
    parser.add_argument("--idle-seconds", type=float, default=0, help="stop after this long without records (0: never)")
    parser.add_argument("--session-timeout-ms", type=int, default=0, help="group session timeout (0: the default)")
    args = parser.parse_args(argv)

    deserialize = AvroDeserializer(SchemaRegistryClient({"url": args.registry}))
    config: dict[str, Any] = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
    }
    if args.session_timeout_ms:  # some brokers settle a group join only after about half of it
        config["session.timeout.ms"] = args.session_timeout_ms
    consumer = Consumer(config)
    consumer.subscribe([args.topic])
    seen, last = 0, time.monotonic()
    try:
        while not args.max_messages or seen < args.max_messages:
            message = consumer.poll(1.0)
            if message is None:
                if args.idle_seconds and time.monotonic() - last > args.idle_seconds:
                    break
                continue
            if message.error():
                print(f"consumer error: {message.error()}", file=sys.stderr)
                continue
            context = SerializationContext(args.topic, MessageField.VALUE)
            alert: dict[str, Any] = deserialize(message.value(), context)
            print(json.dumps(alert, default=str), flush=True)
            seen, last = seen + 1, time.monotonic()
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
