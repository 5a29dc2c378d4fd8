"""The validator: checks miner submissions as they stream in and emits the ensemble.

Read first: ``app.py`` (the one wiring point: Faust app, agents, bridge, timer), ``rounds.py``
(a date's life cycle), ``outcome.py`` (verdicts, weights, ensemble records) and the pure maths
in ``ensemble.py``, ``integrity.py``, ``behaviour.py`` and ``ground_truth.py``.
"""

from validator.settings import ValidatorSettings

__all__ = ["ValidatorSettings"]
