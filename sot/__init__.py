"""The data owner (SOT): synthetic daily batches with planted ground truth, their publisher, labels.

Read first: ``generator.py`` (``generate_batch`` -> ``GeneratedBatch``: the parquet tables of
``streams.batch``, ground truth and traps), ``publisher.py`` (upload, manifest, S3 event on
``sot.batches`` / ``sot.labels``) and ``cli.py`` (``riskstream sot generate|publish|labels``).
The hidden world behind the data is in ``universe.py`` (who is who), ``flows.py`` (typologies),
``features.py`` and ``alerts.py`` (what the owner's analytics and rule engine publish).

    batch = generate_batch("ethereum", date(2026, 1, 2), alerts=1000, addresses=5000, flows=50_000)
    publish_batch(store, producer, topics, batch)      # later: publish_labels(store, producer, topics, batch)
"""

from sot.errors import SotError
from sot.generator import GeneratedBatch, generate_batch, to_parquet
from sot.publisher import announce_batch, publish_batch, publish_labels, write_batch
from sot.settings import SotSettings

__all__ = [
    "GeneratedBatch",
    "SotError",
    "SotSettings",
    "announce_batch",
    "generate_batch",
    "publish_batch",
    "publish_labels",
    "to_parquet",
    "write_batch",
]
