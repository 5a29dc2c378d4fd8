"""Operations: the one-command demo and the replay of dates.

Runs the services as separate ``riskstream`` processes and talks to them only through topics,
the object store and the gateway's HTTP API, so it imports ``streams`` and nothing else of ours.
Read first: ``processes.py`` (start/stop a group of processes), ``demo.py``, ``replay.py``.
"""

from ops.processes import ProcessGroup
from ops.replay import replay_from_scores, replay_from_sot

__all__ = ["ProcessGroup", "replay_from_scores", "replay_from_sot"]
