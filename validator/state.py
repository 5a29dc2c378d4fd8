"""A round's state as kept in the ``batches`` table: one typed value per (date, network).

The table stores JSON dicts (Faust changelogs); ``RoundState`` is read from and written back to
that dict at the edge, so every other module works with typed fields.

    state = RoundState.from_value(tables.batches.get(key.text))
    tables.batches[key.text] = state.replace(emitted=True, version=2).to_value()
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.batch import Manifest


@dataclass(frozen=True, slots=True)
class RoundState:
    """Where a round stands: opened by a batch event, emitted as ``version``, labels applied or not.

    ``opened_at`` is when the announcement this round answers was seen (latency and the deadline
    count from it); ``weights`` are the weights of the emitted version (ground truth reuses them)
    and ``priors`` the priors they were built from (every later version reuses them, so a replay
    of unchanged inputs is exact, unless re-weighed on purpose); ``failed`` says why the batch
    could not be read (a new event retries).
    """

    version: int = 0
    opened: bool = False
    emitted: bool = False
    late_pending: bool = False
    network: str = ""
    date: str = ""
    window_days: int = 0
    batch_id: str = ""
    manifest_key: str = ""
    published_at: int = 0
    opened_at: int = 0
    deadline_at: int = 0
    opened_by: str = ""
    failed: str | None = None
    trigger: str = ""
    weights: dict[str, float] = field(default_factory=dict)
    priors: dict[str, float] = field(default_factory=dict)
    labels_key: str = ""
    labels_version: int | None = None
    replayed_by: list[str] = field(default_factory=list)

    @property
    def open(self) -> bool:
        """Opened and waiting for its ensemble (not emitted, batch readable)."""
        return self.opened and not self.emitted and not self.failed

    @property
    def labels_due(self) -> bool:
        """Labels are known and not yet applied to the emitted version."""
        return self.emitted and bool(self.labels_key) and self.labels_version != self.version

    def replace(self, **changes: Any) -> RoundState:
        return dataclasses.replace(self, **changes)

    def reopened(
        self, manifest: Manifest, manifest_key: str, opened_at: int, deadline_s: float, **changes: Any
    ) -> RoundState:
        """Open for ``manifest`` (again), not emitted, its deadline ``deadline_s`` after ``opened_at``."""
        return self.replace(
            opened=True,
            emitted=False,
            network=manifest.network,
            date=manifest.processing_date.isoformat(),
            window_days=manifest.window_days,
            batch_id=manifest.batch_id,
            manifest_key=manifest_key,
            published_at=int(manifest.published_at.timestamp() * 1000),
            opened_at=opened_at,
            deadline_at=opened_at + int(deadline_s * 1000),
            **changes,
        )

    def to_value(self) -> dict[str, Any]:
        value = dataclasses.asdict(self)
        value["weights"] = dict(sorted(self.weights.items()))
        value["priors"] = dict(sorted(self.priors.items()))
        return value

    @classmethod
    def from_value(cls, value: Mapping[str, Any] | None) -> RoundState:
        """From a table value (missing fields take their defaults, unknown ones are ignored)."""
        if not value:
            return cls()
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in value.items() if k in names}
        if known.get("labels_key") is None:
            known.pop("labels_key", None)
        state = cls(**known)
        return state.replace(
            weights={str(m): float(w) for m, w in dict(state.weights or {}).items()},
            priors={str(m): float(w) for m, w in dict(state.priors or {}).items()},
            replayed_by=[str(p) for p in state.replayed_by or []],
        )
