"""Fixtures of the miner's unit tests: a file store with published synthetic days and trained models."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from miner_synth import FIRST_DAY, NETWORK, WINDOW, Published, make_batch, publish

from miner.model_store import ModelStore
from miner.profiles import get_profile
from miner.training import labelled_dates, train_models
from streams.objectstore import FileObjectStore


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """8 days x 800 alerts: 6 for training (labels published), 2 held out (labels published too)."""
    store = FileObjectStore(tmp_path_factory.mktemp("store"))
    batches = [make_batch(FIRST_DAY + dt.timedelta(days=i), alerts=800, flows=8000) for i in range(8)]
    keys = [publish(store, b) for b in batches]
    return Published(store, batches, keys)


def _train(published: Published, directory: Path, profile: str) -> ModelStore:
    dates = labelled_dates(
        published.store, NETWORK, published.train_dates[0], published.train_dates[-1], WINDOW, today=dt.date(2027, 1, 1)
    )
    model_store = ModelStore(directory)
    stamp = dt.datetime(2026, 1, 20, 3, 0, tzinfo=dt.UTC)
    for model in train_models(
        dates, network=NETWORK, window_days=WINDOW, profile=get_profile(profile), trained_at=stamp
    ):
        model_store.save(model.stem, model.data, model.metadata)
    return model_store


@pytest.fixture(scope="session")
def model_store_a(published: Published, tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    return _train(published, tmp_path_factory.mktemp("models-a"), "honest-a")


@pytest.fixture(scope="session")
def model_store_b(published: Published, tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    return _train(published, tmp_path_factory.mktemp("models-b"), "honest-b")
