"""The miner: features, XGBoost training, model store, scoring and the agent on its own Avro topic.

Read first: ``features.py`` (the canonical feature order), ``training.py``, ``scoring.py``
(pure functions), ``agent.py`` (the loop) and ``app.py`` (the one place clients are made).
"""

import sys

# xgboost imports scikit-learn (and with it pandas and most of SciPy: ~90 MiB of RSS) whenever it
# is installed, only for its XGBClassifier-style wrappers. The miner uses Booster and DMatrix alone,
# and scikit-learn is installed for the ground-truth metrics (streams.label_metrics, imported when
# they are computed), so xgboost is imported here, first, with scikit-learn hidden from it; a later
# ``import sklearn`` in the same process still works. tests/unit/miner/test_miner_imports.py guards it.
if "xgboost" not in sys.modules and "sklearn" not in sys.modules:
    sys.modules["sklearn"] = None  # type: ignore[assignment]  # makes `import sklearn` raise ImportError
    try:
        import xgboost  # noqa: F401
    finally:
        del sys.modules["sklearn"]

from miner.errors import MinerError  # noqa: E402
from miner.features import CLUSTER_FEATURE_NAMES, FEATURE_NAMES, FEATURE_VERSION  # noqa: E402
from miner.settings import MinerSettings  # noqa: E402

__all__ = ["CLUSTER_FEATURE_NAMES", "FEATURE_NAMES", "FEATURE_VERSION", "MinerError", "MinerSettings"]
