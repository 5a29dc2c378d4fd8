"""Simulated participants with known answers, for tests, benchmarks and the demo; no service imports it.

Start with ``batches.py`` (a batch with planted labels and traps), ``submissions.py`` (a miner's
wire records for it), ``adversaries.py`` (honest, random, constant and copycat score vectors) and
``sample.py`` (every record of one validated date, for the warehouse and the gateway).
``oracle.py`` builds ensemble records the slow, obvious way to check the validator's encoder.

    batch = make_batch(300, dt.date(2026, 1, 2), seed=1)
    records = submission_records(codec, batch, "m1", *adversarial_panel(batch, seed=2)["honest-1"], produced_at)
"""

from simulation.adversaries import (
    adversarial_panel,
    constant_scores,
    copied_scores,
    honest_models,
    honest_scores,
    random_scores,
)
from simulation.batches import SyntheticBatch, make_batch, write_batch, write_labels
from simulation.sample import as_messages, as_published, sample_date
from simulation.submissions import submission_records

__all__ = [
    "SyntheticBatch",
    "adversarial_panel",
    "as_messages",
    "as_published",
    "constant_scores",
    "copied_scores",
    "honest_models",
    "honest_scores",
    "make_batch",
    "random_scores",
    "sample_date",
    "submission_records",
    "write_batch",
    "write_labels",
]
