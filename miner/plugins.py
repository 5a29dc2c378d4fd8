"""Finding a scorer by name: built-in profiles, the ``riskstream.scorers`` entry points, ``module:factory``.

scorer = make_scorer("honest-a", context)              # a built-in (every --profile name)
scorer = make_scorer("hgb", context)                   # an installed package's entry point
scorer = make_scorer("mypkg.scorer:factory", context)  # any importable factory
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points

from miner.adversaries import ConstantScorer, CopycatScorer, LateScorer, PartialScorer, RandomScorer
from miner.errors import ScorerError
from miner.profiles import PROFILES, get_profile
from miner.scorer import Scorer, ScorerContext
from miner.xgboost_scorer import XGBoostScorer

ENTRY_POINT_GROUP = "riskstream.scorers"
Factory = Callable[[ScorerContext], Scorer]


def _xgboost(profile: str) -> Factory:
    def factory(context: ScorerContext) -> Scorer:
        return XGBoostScorer(
            get_profile(profile),
            network=context.network,
            seed=context.seed,
            threads=context.threads,
            window_days=context.settings.window_days,
        )

    return factory


def _partial(context: ScorerContext) -> Scorer:
    return PartialScorer(_xgboost("partial")(context), context)


def _late(context: ScorerContext) -> Scorer:
    return LateScorer(_xgboost("late")(context), context)


BUILTIN: dict[str, Factory] = {
    "honest-a": _xgboost("honest-a"),
    "honest-b": _xgboost("honest-b"),
    "random": RandomScorer,
    "constant": ConstantScorer,
    "copycat": CopycatScorer,
    "partial": _partial,
    "late": _late,
}
assert set(BUILTIN) == set(PROFILES)  # every --profile name is a built-in scorer


def installed() -> dict[str, str]:
    """Entry-point name -> ``module:attr`` of every scorer an installed package registers."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_factory(spec: str) -> Factory:
    """The factory ``spec`` names: a built-in, an entry point, or ``package.module:attr``."""
    if spec in BUILTIN:
        return BUILTIN[spec]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == spec:
            try:
                loaded = ep.load()
            except Exception as exc:  # a broken plug-in is the plug-in's fault: one clear line
                msg = f"scorer entry point {spec!r} ({ep.value}) cannot be loaded: {type(exc).__name__}: {exc}"
                raise ScorerError(msg) from exc
            return _callable(loaded, spec)
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        known = sorted({*BUILTIN, *installed()})
        msg = f"unknown scorer {spec!r}: use package.module:factory or one of {', '.join(known)}"
        raise ScorerError(msg)
    try:
        target: object = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        msg = f"scorer {spec!r} cannot be imported: {type(exc).__name__}: {exc}"
        raise ScorerError(msg) from exc
    return _callable(target, spec)


def _callable(target: object, spec: str) -> Factory:
    if not callable(target):
        msg = f"scorer {spec!r} is not callable: it must be a factory (ScorerContext) -> Scorer"
        raise ScorerError(msg)
    return target  # checked on the result in make_scorer


def make_scorer(spec: str, context: ScorerContext) -> Scorer:
    """Build the scorer ``spec`` names and check it has every member of the protocol."""
    scorer = load_factory(spec)(context)
    if not isinstance(scorer, Scorer):
        members = ("name", "version", "trainable", "fit", "score", "save", "load")
        missing = [m for m in members if not hasattr(scorer, m)]
        msg = f"scorer {spec!r} returned a {type(scorer).__name__} that lacks {', '.join(missing)}"
        raise ScorerError(msg)
    return scorer
