"""``miner check``: what the validator would say of a submission, computed before it is sent.

Tiers 1-2 need only the batch and the scorer (completeness, range, determinism by scoring twice,
encoding and checksum, rank consistency, constant scores); for a date whose ground truth is
published, the tier-3 metrics are computed next to the ensemble's (from the gateway's REST API).

    report = check_submission(scorer, batch, labels, ensemble=fetch_ensemble(url, network, date))
    print(render_report(report))
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

from miner.checks import checked_scores
from miner.errors import MinerError
from miner.records import submission_records
from miner.scorer import Scorer
from miner.scoring import BatchScores
from streams.batch import Batch, Labels
from streams.codec import AvroCodec
from streams.errors import CodecError, SubmissionError

Floats = npt.NDArray[np.float64]
PRECISION_K = 100
CALIBRATION_BINS = 10


@dataclass(frozen=True, slots=True)
class Finding:
    """One check: its name, whether it passes, the figure and a sentence."""

    name: str
    ok: bool
    value: float | None
    detail: str


@dataclass(frozen=True, slots=True)
class CheckReport:
    date: dt.date
    network: str
    version: str
    findings: list[Finding]
    ground_truth: dict[str, dict[str, float]] = field(default_factory=dict)  # "miner" / "ensemble" -> metrics
    ensemble_source: str = ""

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {
            "date": self.date.isoformat(),
            "network": self.network,
            "model_version": self.version,
            "ok": self.ok,
            "checks": [{"name": f.name, "ok": f.ok, "value": f.value, "detail": f.detail} for f in self.findings],
            "ground_truth": self.ground_truth,
            "ensemble_source": self.ensemble_source,
        }


def _average_ranks(values: Floats) -> Floats:
    """Ranks from 1, ties sharing their average rank (as the validator ranks)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks: Floats = ((ends - counts + 1 + ends) / 2.0)[inverse]
    return ranks


def _spearman(a: Floats, b: Floats) -> float:
    if a.size < 2:
        return float("nan")
    ra, rb = _average_ranks(a), _average_ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def ground_truth_metrics(scores: Floats, labels: npt.NDArray[np.int8], *, k: int = PRECISION_K) -> dict[str, float]:
    """AUC-ROC, AUC-PR, precision@K, Brier score and calibration error (10 equal-width bins), as the validator's
    tier 3 computes them (``streams.label_metrics``); NaN where the labels leave a figure undefined."""
    from streams import label_metrics  # scikit-learn: loaded by `miner check`, not by a miner that only scores

    s = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    return {
        "auc_roc": label_metrics.auc_roc(s, labels),
        "auc_pr": label_metrics.auc_pr(s, labels),
        "precision_at_k": label_metrics.precision_at_k(s, labels, k),
        "brier": label_metrics.brier(s, labels),
        "calibration_error": label_metrics.calibration_error(s, labels, CALIBRATION_BINS),
        "alerts": float(s.size),
        "positives": float(np.asarray(labels, dtype=np.float64).sum()),
    }


def _labelled(ids: Sequence[str], scores: Floats, labels: Labels) -> tuple[Floats, npt.NDArray[np.int8]]:
    truth = dict(zip(labels.alerts["alert_id"].to_pylist(), labels.alerts["label"].to_pylist(), strict=True))
    keep = [i for i, a in enumerate(ids) if a in truth]
    return np.asarray(scores, dtype=np.float64)[keep], np.array([truth[ids[i]] for i in keep], dtype=np.int8)


def _tier1(batch: Batch, first: BatchScores, second: BatchScores, codec: AvroCodec | None) -> list[Finding]:
    batch_ids = set(batch.alerts["alert_id"].to_pylist())
    scored = len(batch_ids & set(first.alert_ids))
    completeness = scored / len(batch_ids) if batch_ids else 0.0
    every = np.concatenate([first.alert_scores, first.cluster_scores])
    in_range = float(((every >= 0) & (every <= 1) & np.isfinite(every)).mean()) if every.size else 0.0
    same = first.alert_ids == second.alert_ids and first.cluster_ids == second.cluster_ids
    same = same and np.array_equal(first.alert_scores, second.alert_scores)
    same = same and np.array_equal(first.cluster_scores, second.cluster_scores)
    findings = [
        Finding("completeness", completeness >= 0.95, completeness, f"{scored} of {len(batch_ids)} alerts scored"),
        Finding("range", in_range == 1.0, in_range, "share of scores that are finite and in [0, 1]"),
        Finding(
            "determinism",
            same and first.model_versions == second.model_versions,
            1.0 if same else 0.0,
            "scoring twice gave identical scores" if same else "scoring twice gave different scores",
        ),
    ]
    try:
        records = submission_records(
            first,
            manifest=batch.manifest,
            miner_id="check",
            buckets=16,
            chunk_size=1000,
            latency_ms=0.0,
            produced_at=dt.datetime.now(dt.UTC),
        )
        if codec is not None:
            for record in records:
                codec.encode(record.schema, record.value)
        findings.append(
            Finding("schema", True, float(len(records)), f"{len(records)} records encode, checksum computed")
        )
    except (SubmissionError, CodecError, MinerError) as exc:
        findings.append(Finding("schema", False, None, f"{type(exc).__name__}: {exc}"))
    return findings


def _tier2(scores: BatchScores) -> list[Finding]:
    values = scores.alert_scores
    consistency = _spearman(values, -scores.ranks().astype(np.float64))
    distinct, counts = np.unique(values, return_counts=True) if values.size else (np.empty(0), np.zeros(1))
    share = float(counts.max() / values.size) if values.size else 1.0
    degenerate = values.size == 0 or values.std() < 1e-6 or distinct.size <= 2 or share > 0.9
    return [
        Finding(
            "rank consistency",
            not math.isnan(consistency) and consistency >= 0.8,
            None if math.isnan(consistency) else consistency,
            "Spearman correlation of ranks with scores (the validator wants >= 0.8)",
        ),
        Finding(
            "not constant",
            not degenerate,
            float(distinct.size),
            "distinct alert scores (constant, two-valued or 90% one value is gaming)",
        ),
    ]


def check_submission(
    scorer: Scorer,
    batch: Batch,
    labels: Labels | None,
    *,
    codec: AvroCodec | None = None,
    ensemble: Mapping[str, float] | None = None,
    ensemble_source: str = "",
    k: int = PRECISION_K,
) -> CheckReport:
    """Score ``batch`` twice with ``scorer`` and judge it as tiers 1-2 (and 3 when ``labels`` are given)."""
    first = checked_scores(scorer.score(batch), batch, scorer)
    second = checked_scores(scorer.score(batch), batch, scorer)
    findings = _tier1(batch, first, second, codec) + _tier2(first)
    ground_truth: dict[str, dict[str, float]] = {}
    if labels is not None:
        s, y = _labelled(first.alert_ids, first.alert_scores, labels)
        ground_truth["miner"] = ground_truth_metrics(s, y, k=k)
        if ensemble:
            ids = [i for i in first.alert_ids if i in ensemble]
            s, y = _labelled(ids, np.array([ensemble[i] for i in ids], dtype=np.float64), labels)
            ground_truth["ensemble"] = ground_truth_metrics(s, y, k=k)
    return CheckReport(
        batch.manifest.processing_date,
        batch.manifest.network,
        first.model_versions.get("alert_scorer", scorer.version),
        findings,
        ground_truth,
        ensemble_source if ensemble else "",
    )


def fetch_ensemble(
    gateway_url: str, network: str, date: dt.date, *, client: httpx.Client | None = None, page: int = 10_000
) -> dict[str, float] | None:
    """The ensemble's alert scores of ``date`` from the gateway REST API, or None when it has none."""
    own = client is None
    http = client or httpx.Client(base_url=gateway_url, timeout=30)
    scores: dict[str, float] = {}
    try:
        offset = 0
        while True:
            answer = http.get(
                f"/ensemble/scores/alerts/{date.isoformat()}",
                params={"network": network, "limit": page, "offset": offset},
            )
            if answer.status_code == 404:
                return None
            answer.raise_for_status()
            rows = answer.json().get("ensemble_scores", [])
            scores.update({str(r["alert_id"]): float(r["ensemble_score"]) for r in rows})
            if len(rows) < page:
                return scores
            offset += page
    except httpx.HTTPError:
        return None
    finally:
        if own:
            http.close()


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.0f}"


def render_report(report: CheckReport) -> str:
    """The report as the text ``miner check`` prints."""
    lines = [f"miner check {report.network} {report.date}: model {report.version or '-'}", ""]
    lines.append("tiers 1-2 (what the validator checks on arrival)")
    for f in report.findings:
        lines.append(f"  {'ok  ' if f.ok else 'FAIL'} {f.name:<17} {_fmt(f.value):>10}  {f.detail}")
    lines.append("  (plagiarism and agreement with other miners are judged against their submissions: not here)")
    if report.ground_truth:
        lines += ["", "tier 3 (ground truth of the date)"]
        columns = ["miner"] + (["ensemble"] if "ensemble" in report.ground_truth else [])
        lines.append(f"  {'metric':<18}" + "".join(f"{c:>12}" for c in columns))
        for metric in ("auc_roc", "auc_pr", "precision_at_k", "brier", "calibration_error", "alerts", "positives"):
            lines.append(f"  {metric:<18}" + "".join(f"{_fmt(report.ground_truth[c][metric]):>12}" for c in columns))
        if "ensemble" in report.ground_truth:
            lines.append(f"  ensemble from {report.ensemble_source}")
        else:
            lines.append("  no ensemble for this date in the gateway")
    else:
        lines += ["", "tier 3: the ground truth of this date is not published yet"]
    lines += ["", "would pass tiers 1-2" if report.ok else "would FAIL: fix the checks marked FAIL before submitting"]
    return "\n".join(lines)
