"""Round steps: the wire, the validator's signature, and what a ledger decides from them."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from validator_fakes import DATE

from streams.codec import AvroCodec
from streams.errors import CodecError
from streams.records import MINER_HEARTBEAT
from streams.signing import VALIDATOR, Signer
from validator.steps import (
    CLOSE,
    DONE,
    EMITTED,
    JUDGED,
    PARTIALS_PURPOSE,
    PROGRESS,
    READY,
    STEPS_PURPOSE,
    WEIGHTS,
    LedgerSubmissions,
    MinerStep,
    RoundLedger,
    Step,
    decode_step,
    encode_step,
    signed,
    verified,
)

VALIDATOR_SIGNER = Signer(Ed25519PrivateKey.generate(), VALIDATOR)


def _progress(partition: int, *miners: MinerStep, read_until: int = 0, offset: int = 0) -> Step:
    return Step("ethereum", DATE, 1, PROGRESS, partition, read_until_ms=read_until, offset=offset, miners=miners)


def test_a_step_survives_the_wire(codec: AvroCodec) -> None:
    step = Step(
        "ethereum", DATE, 1, WEIGHTS, -1, "all_complete", 5, 9, (MinerStep("m1", 1, 2, 3, 4, "ab", 0.25),), ("m1",)
    )
    assert decode_step(codec, encode_step(codec, step)) == step
    judged = Step("ethereum", DATE, 1, JUDGED, miners=(MinerStep("m1", final_score=0.8, ground_truth_score=0.35),))
    assert decode_step(codec, encode_step(codec, judged)) == judged
    assert step.key == f"ethereum:{DATE}" and step.round_text == f"{DATE}|ethereum"
    with pytest.raises(CodecError):
        decode_step(codec, codec.encode(MINER_HEARTBEAT, {"miner_id": "m", "sent_at": 0}))
    with pytest.raises(CodecError):
        decode_step(codec, encode_step(codec, Step("ethereum", DATE, 1, "weighs")))


def test_only_the_validator_signature_for_that_topic_is_accepted(codec: AvroCodec) -> None:
    value = encode_step(codec, Step("ethereum", DATE, 1, CLOSE, trigger="deadline"))
    key = f"ethereum:{DATE}"
    headers = signed(VALIDATOR_SIGNER, STEPS_PURPOSE, key, value, DATE)
    assert verified(VALIDATOR_SIGNER.public_key, STEPS_PURPOSE, key.encode(), value, headers) is None
    stranger = Signer(Ed25519PrivateKey.generate(), VALIDATOR)
    forged = signed(stranger, STEPS_PURPOSE, key, value, DATE)
    assert verified(VALIDATOR_SIGNER.public_key, STEPS_PURPOSE, key.encode(), value, forged) is not None
    assert verified(VALIDATOR_SIGNER.public_key, STEPS_PURPOSE, key.encode(), value, []) is not None
    # a partial's signature does not make a step, and a changed value breaks it
    assert verified(VALIDATOR_SIGNER.public_key, PARTIALS_PURPOSE, key.encode(), value, headers) is not None
    assert verified(VALIDATOR_SIGNER.public_key, STEPS_PURPOSE, key.encode(), value + b"x", headers) is not None


def test_complete_needs_every_partition_and_every_announced_chunk() -> None:
    ledger = RoundLedger()
    ledger.apply(_progress(0, MinerStep("a", 2, 1, 4, 1), MinerStep("b", 3, 0)))
    ledger.apply(_progress(1, MinerStep("a", 1, 0), MinerStep("b", 2, 1, 5, 1)))
    assert not ledger.complete(["a", "b"], 3)  # partition 2 has not reported
    ledger.apply(_progress(2))
    assert not ledger.complete(["a", "b"], 3)  # a announced 4 alert chunks, 3 are held
    ledger.apply(_progress(2, MinerStep("a", 1, 0)))  # the latest progress of a partition counts
    assert ledger.complete(["a", "b"], 3)
    assert not ledger.complete(["a", "b", "c"], 3)  # c has no marker
    assert not ledger.complete([], 3)


def test_read_until_is_the_slowest_partition() -> None:
    ledger = RoundLedger()
    ledger.apply(_progress(0, read_until=50))
    assert ledger.read_until(2) == 0
    ledger.apply(_progress(1, read_until=30))
    assert ledger.read_until(2) == 30


def test_the_first_close_ready_and_weights_are_the_ones_used() -> None:
    ledger = RoundLedger()
    ledger.apply(Step("ethereum", DATE, 1, READY, 0, miners=(MinerStep("a", digest="early"),)))
    assert ledger.ready == {}  # a ready before any close means nothing
    ledger.apply(Step("ethereum", DATE, 1, WEIGHTS, miners=(MinerStep("a", weight=1.0),)))
    assert ledger.weights is None
    ledger.apply(Step("ethereum", DATE, 1, CLOSE, trigger="all_complete", expected=("a",)))
    ledger.apply(Step("ethereum", DATE, 1, CLOSE, trigger="deadline"))
    assert ledger.close is not None and ledger.close.trigger == "all_complete"
    ledger.apply(Step("ethereum", DATE, 1, READY, 0, offset=7, miners=(MinerStep("a", digest="d0"),)))
    ledger.apply(Step("ethereum", DATE, 1, READY, 0, offset=9, miners=(MinerStep("a", digest="other"),)))
    assert ledger.digests(2) is None
    ledger.apply(Step("ethereum", DATE, 1, READY, 1, miners=(MinerStep("a", digest="d1"),)))
    assert ledger.digests(2) == {"d0": 0, "d1": 1}
    assert ledger.offsets[0] == 9  # a successor reads at least as far as any holder before it
    ledger.apply(Step("ethereum", DATE, 1, WEIGHTS, miners=(MinerStep("a", weight=0.5),)))
    ledger.apply(Step("ethereum", DATE, 1, WEIGHTS, miners=(MinerStep("a", weight=1.0),)))
    assert ledger.weight_map() == {"a": 0.5}
    ledger.apply(Step("ethereum", DATE, 1, EMITTED, 1))
    ledger.apply(Step("ethereum", DATE, 2, DONE))  # another version: not this ledger's
    assert ledger.emitted == {1} and not ledger.done
    ledger.apply(Step("ethereum", DATE, 1, DONE))
    assert ledger.done


def test_the_roster_sees_markers_and_growing_chunks_in_the_progress_steps() -> None:
    """Submitted: some partition reported the marker; submitting an open round: the marker, or more
    chunks reported (signed time) within the timeout: a miner that stopped half-way is not."""
    ledger = RoundLedger()
    ledger.apply(_progress(0, MinerStep("done", 2, 1, 2, 1), MinerStep("dying", 1)), signed_at_ms=1_000)
    ledger.apply(_progress(1, MinerStep("dying", 2)), signed_at_ms=5_000)
    ledger.apply(_progress(1, MinerStep("dying", 2)), signed_at_ms=9_000)  # nothing new
    text = ledger.progress[0].round_text
    batches = {text: {"opened": True, "emitted": False}}
    seen = LedgerSubmissions(batches, {text: ledger})
    assert seen.submitted(text, "done") and not seen.submitted(text, "dying")
    assert seen.submitting("done", 10**9, 1_000)
    assert seen.submitting("dying", 6_000, 1_000) and not seen.submitting("dying", 6_001, 1_000)
    assert not seen.submitting("absent", 0, 1_000)
    batches[text]["emitted"] = True
    assert not seen.submitting("done", 0, 1_000)  # only open rounds count
