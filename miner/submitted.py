"""The batches a miner has submitted, kept across restarts.

A batch it already submitted is scored again only when an operator re-announced it: a stranger's
repeat of an old announcement would otherwise make it resubmit after the ensemble, where its
records count as late. The set lives in a small append-only file under the miner's home, so a
restart does not forget it.

    submitted = SubmittedBatches(home / "state" / "miner-a" / "submitted")
    submitted.add("snapshots/ethereum/2026-01-15/0/manifest.json")
    "snapshots/ethereum/2026-01-15/0/manifest.json" in SubmittedBatches(same_path)  # True
"""

from __future__ import annotations

import os
from pathlib import Path

KEEP = 10_000  # newest keys kept when the file is compacted at start (a day per network: decades)


class SubmittedBatches:
    """A durable set of manifest keys (in memory only when ``path`` is None)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._keys: dict[str, None] = {}  # insertion-ordered: the newest last
        if path is not None and path.exists():
            *lines, torn = path.read_text(encoding="utf-8").split("\n")  # torn: a write a crash cut short
            for line in lines:
                if line:
                    self._keys.pop(line, None)
                    self._keys[line] = None
            if torn or len(self._keys) > KEEP:
                self._keys = dict.fromkeys(list(self._keys)[-KEEP:])
                self._rewrite()

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str) -> None:
        if "\n" in key:
            msg = f"not a manifest key: {key!r}"
            raise ValueError(msg)
        self._keys.pop(key, None)
        self._keys[key] = None
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(key + "\n")
            out.flush()
            os.fsync(out.fileno())  # a submission the miner reported must survive a crash right after

    def _rewrite(self) -> None:
        assert self.path is not None
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text("".join(k + "\n" for k in self._keys), encoding="utf-8")
        temporary.replace(self.path)
