"""Every topic name riskstream uses, and the one function that names a miner's topic.

A namespace prefix keeps tenants (and tests) apart on one cluster:
``TopicNames(namespace="t1234.").sot_batches == "t1234.sot.batches"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MINER_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MINER_SCORES_PREFIX = "scores."
# A score record's time is the broker's, not the miner's: the validator orders submissions by it
# (who sent scores first decides who copied whom). Kafka honours it; the local broker ignores it.
MINER_SCORES_CONFIG = {"message.timestamp.type": "LogAppendTime"}


def validate_miner_id(miner_id: str) -> str:
    """Return ``miner_id`` if it can name a topic, else raise ``ValueError``."""
    if not _MINER_ID.match(miner_id):
        msg = f"miner id {miner_id!r} must be 1-63 chars of a-z, 0-9, '_' or '-', starting alphanumeric"
        raise ValueError(msg)
    return miner_id


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Topic names under one namespace.

    topics = TopicNames()
    producer.produce(topics.miner_scores("miner-a"), value)
    """

    namespace: str = ""

    def _name(self, base: str) -> str:
        return f"{self.namespace}{base}"

    @property
    def sot_batches(self) -> str:
        return self._name("sot.batches")

    @property
    def sot_labels(self) -> str:
        return self._name("sot.labels")

    @property
    def ensemble_alerts(self) -> str:
        return self._name("ensemble.alerts")

    @property
    def ensemble_clusters(self) -> str:
        return self._name("ensemble.clusters")

    @property
    def ensemble_batches(self) -> str:
        return self._name("ensemble.batches")

    @property
    def validator_results(self) -> str:
        return self._name("validator.results")

    @property
    def miner_errors(self) -> str:
        return self._name("miner.errors")

    @property
    def miner_registry(self) -> str:
        """Miners announce themselves here (key miner_id, compacted where the broker compacts)."""
        return self._name("miners.registry")

    @property
    def validator_inbox(self) -> str:
        """Where the validator's bridge copies every miner topic (Faust cannot pattern-subscribe)."""
        return self._name("validator.inbox")

    @property
    def validator_control(self) -> str:
        """Operator commands to the validator, e.g. replay a date from the score topics."""
        return self._name("validator.control")

    @property
    def validator_partials(self) -> str:
        """Validator-internal, several workers: each inbox partition's share of a miner's round."""
        return self._name("validator.partials")

    @property
    def validator_steps(self) -> str:
        """Validator-internal, several workers: the steps that close a round (progress, close, weights...)."""
        return self._name("validator.steps")

    @property
    def miner_scores_prefix(self) -> str:
        return self._name(MINER_SCORES_PREFIX)

    @property
    def miner_scores_pattern(self) -> str:
        """Regex matching every miner topic of this namespace (for pattern subscriptions)."""
        return "^" + re.escape(self.miner_scores_prefix) + r"[a-z0-9][a-z0-9_-]*$"

    def miner_scores(self, miner_id: str) -> str:
        """The per-miner score topic: the only place its name is built."""
        return self._name(MINER_SCORES_PREFIX + validate_miner_id(miner_id))

    def miner_id_of(self, topic: str) -> str | None:
        """The miner id a score topic belongs to, or None for any other topic."""
        prefix = self.miner_scores_prefix
        if not topic.startswith(prefix):
            return None
        miner_id = topic[len(prefix) :]
        return miner_id if _MINER_ID.match(miner_id) else None

    @property
    def state_epochs(self) -> str:
        """Marks the broker log a stateful service's local state was built on (``streams.epoch``)."""
        return self._name("riskstream.state-epochs")

    def dlq(self, source: str) -> str:
        """Dead-letter topic for a source family, e.g. ``dlq("scores")``."""
        return self._name(f"dlq.{source}")

    def all_fixed(self) -> list[str]:
        """The topics that exist independently of any miner."""
        return [
            self.sot_batches,
            self.sot_labels,
            self.ensemble_alerts,
            self.ensemble_clusters,
            self.ensemble_batches,
            self.validator_results,
            self.miner_errors,
            self.miner_registry,
            self.validator_inbox,
            self.validator_control,
            self.state_epochs,
            self.dlq("scores"),
            self.dlq("sot"),
            self.dlq("registry"),
            self.dlq("warehouse"),
        ]
