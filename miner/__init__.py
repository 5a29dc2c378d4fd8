"""The miner: features, XGBoost training, model store, scoring and the agent on its own Avro topic.

Read first: ``features.py`` (the canonical feature order), ``training.py``, ``scoring.py``
(pure functions), ``agent.py`` (the loop) and ``app.py`` (the one place clients are made).
"""

from miner.errors import MinerError
from miner.features import CLUSTER_FEATURE_NAMES, FEATURE_NAMES, FEATURE_VERSION
from miner.settings import MinerSettings

__all__ = ["CLUSTER_FEATURE_NAMES", "FEATURE_NAMES", "FEATURE_VERSION", "MinerError", "MinerSettings"]
