"""A miner process that scores loads neither scikit-learn nor pandas nor SciPy beyond what xgboost itself imports.

scikit-learn is installed for the ground-truth metrics; xgboost would import it (and pandas and most of
SciPy, ~90 MiB of RSS) for its scikit-learn wrappers, which the miner never uses (miner/__init__.py).
"""

from __future__ import annotations

import json
import subprocess
import sys

# xgboost 3.2's own top-level imports: core.py imports scipy.sparse, sklearn.py scipy.special
XGBOOST_SCIPY = {"sparse", "special"}

_PROBE = """
import json, sys
from streams.cli import build_parser
build_parser()  # what `riskstream miner run` imports: every service's commands
import miner.agent, miner.app, miner.scoring, miner.xgboost_scorer
loaded = sorted(sys.modules)
import sklearn.metrics  # still importable afterwards, for `miner check` and training reports
from miner.metrics import auc_roc
print(json.dumps({"loaded": loaded, "auc": auc_roc([0, 1, 1], [0.1, 0.9, 0.8])}))
"""


def test_a_scoring_miner_process_does_not_load_scikit_learn() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    loaded = found["loaded"]
    assert [m for m in loaded if m.split(".")[0] in ("sklearn", "pandas")] == []
    scipy = {m.split(".")[1] for m in loaded if m.startswith("scipy.") and not m.split(".")[1].startswith("_")}
    assert scipy - {"version"} <= XGBOOST_SCIPY
    assert "streams.label_metrics" not in loaded
    assert found["auc"] == 1.0
