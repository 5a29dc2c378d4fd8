"""Replay: a round rebuilt from re-read miner records, emitted as a new version by ``Rounds``.

A replay reopens the round (from its stored state, or from the batch manifest found through the
records' window when the tables lost it), clears what was counted for it, and remembers the
control command that asked for it, so a command delivered again is not replayed twice.

    replays = Replays(intake)                         # the intake's tables, settings, codec and store
    if not replays.seen(rkey, position):
        replays.reopen(rkey, None if replays.opened(rkey) else replays.manifest_for(rkey, records))
        ...                                           # ingest the records, emit the next version
        replays.mark(rkey, position)
"""

from __future__ import annotations

from collections.abc import Sequence

from streams.batch import Manifest
from streams.errors import CodecError
from validator.batches import batch_manifest_key, read_manifest
from validator.bridge import InboxRecord
from validator.errors import ReplayError
from validator.intake import Intake, millis
from validator.state import RoundState
from validator.tables import RoundKey

REPLAYS_KEPT = 20  # control command positions remembered per round


class Replays:
    """The round-state side of a replay; see the module docstring."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake
        self.tables, self.settings, self.codec, self.store = intake.tables, intake.settings, intake.codec, intake.store

    def _state(self, rkey: RoundKey) -> RoundState:
        return RoundState.from_value(self.tables.batches.get(rkey.text))

    def seen(self, rkey: RoundKey, position: str) -> bool:
        """The command at ``position`` was already served for this round."""
        stored = self.tables.batches.get(rkey.text)
        return bool(position) and stored is not None and position in RoundState.from_value(stored).replayed_by

    def opened(self, rkey: RoundKey) -> bool:
        return self._state(rkey).opened

    def manifest_for(self, rkey: RoundKey, records: Sequence[InboxRecord]) -> tuple[str, Manifest]:
        """The batch manifest of a round the tables lost (found from the records' window); blocking."""
        window = next((w for w in map(self._window_of, records) if w is not None), None)
        if window is None:
            msg = f"replay of {rkey.network} {rkey.date}: no batch and no miner records to rebuild it from"
            raise ReplayError(msg)
        key = batch_manifest_key(rkey.network, rkey.date, window)
        manifest = read_manifest(self.store, key)
        if (manifest.network, manifest.processing_date) != (rkey.network, rkey.date):
            msg = f"replay of {rkey.network} {rkey.date}: {key} is the manifest of {manifest.network} "
            msg += f"{manifest.processing_date}"
            raise ReplayError(msg)
        return key, manifest

    def reopen(self, rkey: RoundKey, found: tuple[str, Manifest] | None) -> None:
        """Open the round again (from ``found`` when the tables lost it) with nothing counted for it."""
        if found is not None:
            key, manifest = found
            published = millis(manifest.published_at)
            state = self._state(rkey).reopened(manifest, key, published, self.settings.deadline_s)
            self.tables.batches[rkey.text] = state.to_value()
        self.intake.clear_round(rkey)

    def mark(self, rkey: RoundKey, position: str) -> None:
        """Remember the command that asked for this replay."""
        if position:
            state = RoundState.from_value(self.tables.batches[rkey.text])
            replayed = [*state.replayed_by[-REPLAYS_KEPT:], position]
            self.tables.batches[rkey.text] = state.replace(replayed_by=replayed).to_value()

    def _window_of(self, rec: InboxRecord) -> int | None:
        try:
            return int(self.codec.decode(rec.value).record["window_days"])
        except (CodecError, KeyError, TypeError, ValueError):
            return None
