"""The example outside miner (examples/hgb_miner): its own features and model family, through the Scorer protocol."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pytest
from miner_synth import NETWORK, WINDOW, Published

from miner.errors import ModelNotFoundError
from miner.metrics import auc_pr
from miner.training import labelled_history
from miner.training_run import evaluate, train_validated
from streams.batch import read_batch

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "examples" / "hgb_miner"))
from hgb_miner import HGBScorer  # noqa: E402  (the example is a package of its own, not installed here)

FUTURE = dt.date(2027, 1, 1)


def test_the_example_fits_validates_saves_loads_and_beats_the_sot_confidence(
    published: Published, tmp_path: Path
) -> None:
    days = labelled_history(
        published.store, NETWORK, published.train_dates[0], published.train_dates[-1], WINDOW, today=FUTURE
    )
    with pytest.raises(ModelNotFoundError, match="no model"):
        HGBScorer().load(tmp_path)
    outcome = train_validated(HGBScorer(), days, current=None, max_auc_pr_drop=0.02)
    assert outcome.promoted and outcome.scorer is not None
    version = outcome.scorer.save(tmp_path)
    loaded = HGBScorer().load(tmp_path)
    assert loaded.version == version and version.startswith("hgb-")

    held_out = labelled_history(
        published.store, NETWORK, published.held_out[0].date, published.held_out[-1].date, WINDOW, today=FUTURE
    )
    [ours] = evaluate([loaded], held_out)
    batch = read_batch(published.store, published.keys[-1])
    confidence = batch.alerts["alert_confidence_score"].to_numpy()
    labels = published.held_out[-1].alert_labels["label"].to_numpy()
    assert ours.auc_pr > auc_pr(labels, confidence) + 0.1, (ours, auc_pr(labels, confidence))

    scores = loaded.score(batch)
    again = HGBScorer().load(tmp_path).score(batch)
    assert np.array_equal(scores.alert_scores, again.alert_scores)  # deterministic: same model, same scores
    assert (
        len(scores.cluster_ids) == batch.clusters.num_rows
        and ((scores.cluster_scores >= 0) & (scores.cluster_scores <= 1)).all()
    )
