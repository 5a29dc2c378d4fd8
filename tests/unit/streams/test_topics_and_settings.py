from __future__ import annotations

import re

import pytest

from streams.settings import StackSettings
from streams.topics import TopicNames


def test_miner_topic_comes_from_one_function_and_round_trips() -> None:
    topics = TopicNames("t1.")
    assert topics.miner_scores("miner-a") == "t1.scores.miner-a"
    assert topics.miner_id_of("t1.scores.miner-a") == "miner-a"
    assert topics.miner_id_of("scores.miner-a") is None
    assert topics.miner_id_of("t1.ensemble.alerts") is None
    assert re.match(topics.miner_scores_pattern, "t1.scores.miner_b")
    assert not re.match(topics.miner_scores_pattern, "t2.scores.miner_b")


@pytest.mark.parametrize("bad", ["", "Miner", "a b", "-x", "x" * 64, "a.b"])
def test_bad_miner_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="miner id"):
        TopicNames().miner_scores(bad)


def test_fixed_topics_are_namespaced() -> None:
    assert all(name.startswith("ns.") for name in TopicNames("ns.").all_fixed())
    assert TopicNames().sot_batches == "sot.batches"


def test_stack_settings_read_env_and_are_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKSTREAM_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("RISKSTREAM_TOPIC_NAMESPACE", "x.")
    settings = StackSettings(_env_file=None)
    assert settings.bootstrap_servers == "kafka:9092"
    assert settings.topics.sot_batches == "x.sot.batches"
    with pytest.raises(Exception, match="frozen"):
        settings.bootstrap_servers = "y"  # type: ignore[misc]


def test_stack_settings_read_the_stack_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    env = tmp_path / "stack.env"
    env.write_text("RISKSTREAM_BOOTSTRAP_SERVERS=127.0.0.1:1234\n")
    assert StackSettings(_env_file=env).bootstrap_servers == "127.0.0.1:1234"
