"""An outside riskstream miner: a scikit-learn HistGradientBoosting scorer on its own features."""

from hgb_miner.scorer import HGBScorer, factory

__all__ = ["HGBScorer", "factory"]
