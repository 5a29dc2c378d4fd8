"""Money flows read in slices: per-address flow totals from typed arrays, never the whole table.

A day's ``money_flows.parquet`` is the largest file of a batch (millions of edges). The features
need only five of its columns, aggregated per alert address, so the file is read in record
batches of those columns and folded into numpy accumulators indexed by address; peak memory is
one slice plus the accumulators, whatever the number of flows.

    flows = read_batch(store, key).money_flows      # a streams.batch.FlowFile
    totals = flow_totals(flows, alert_addresses, mixers, risky)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from streams.batch import FLOW_SLICE_ROWS, FlowFile

FEATURE_COLUMNS = ("from_address", "to_address", "tx_count", "amount_usd_sum", "is_bidirectional")
BATCH_ROWS = FLOW_SLICE_ROWS

Vector = npt.NDArray[np.float64]


def use_arrow_memory_pool(name: str) -> None:
    """Make ``name`` (jemalloc, mimalloc or system) the process's Arrow allocator.

    Arrow's default, mimalloc, keeps freed pages of a day's tables resident; with jemalloc a
    miner's peak RSS at 100k alerts / 2M flows is ~100 MiB lower (bench/bench_miner_scale.py).
    """
    pools = {"jemalloc": pa.jemalloc_memory_pool, "mimalloc": pa.mimalloc_memory_pool, "system": pa.system_memory_pool}
    if name not in pools:
        msg = f"unknown Arrow memory pool {name!r}: one of {', '.join(pools)}"
        raise ValueError(msg)
    try:
        pool = pools[name]()
        if name == "jemalloc":
            # arenas made from now on give freed pages back at once; those jemalloc made when pyarrow
            # was imported keep Arrow's 1 s decay (only JE_ARROW_MALLOC_CONF, set before the process
            # starts, changes them: ~35 MiB less peak RSS at 100k alerts / 2M flows)
            pa.jemalloc_set_decay_ms(0)
    except NotImplementedError:  # this Arrow build lacks it: keep the default
        return
    pa.set_memory_pool(pool)


def flow_slices(flows: pa.Table | FlowFile) -> Iterator[pa.RecordBatch]:
    """The feature columns of ``flows`` in slices, from a file or from an in-memory table."""
    if isinstance(flows, FlowFile):
        yield from flows.batches(FEATURE_COLUMNS)
        return
    yield from flows.select(list(FEATURE_COLUMNS)).to_batches(max_chunksize=BATCH_ROWS)


def _at_least(slices: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Consecutive slices joined until each part has ``rows`` rows (the last may have fewer)."""
    held: list[pa.RecordBatch] = []
    count = 0
    for part in slices:
        held.append(part)
        count += part.num_rows
        if count >= rows:
            yield _joined(held)
            held, count = [], 0
    if held:
        yield _joined(held)


def _joined(parts: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(parts) == 1:
        return parts[0]
    return pa.Table.from_batches(parts).combine_chunks().to_batches()[0]


@dataclass(frozen=True, slots=True)
class FlowTotals:
    """Per-address sums over the flows, one entry per address of the universe given to ``flow_totals``."""

    in_count: Vector
    out_count: Vector
    in_usd: Vector
    out_usd: Vector
    in_tx: Vector
    out_tx: Vector
    total_usd: Vector
    total_tx: Vector
    links: Vector
    bidir: Vector
    mixer_usd: Vector
    risky_usd: Vector


def _f64(array: pa.Array, fill: float | bool) -> Vector:
    filled = pc.fill_null(array, fill)
    if pa.types.is_boolean(filled.type):
        filled = pc.cast(filled, pa.float64())
    return np.asarray(pc.cast(filled, pa.float64()).to_numpy(zero_copy_only=False), np.float64)


def _positions(keys: pa.Array, universe: pa.Array) -> npt.NDArray[np.int64]:
    found = pc.index_in(keys, value_set=universe)
    return np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False), np.int64)


def flow_totals(flows: pa.Table | FlowFile, universe: pa.Array, mixers: pa.Array, risky: pa.Array) -> FlowTotals:
    """Flow sums per address of ``universe`` (distinct strings), counterparty shares by ``mixers``/``risky``.

    Sums add each flow in file order, outgoing flows of an address before its incoming ones (the
    order a group-by over the outgoing then the incoming edges adds them), so the figures do not
    depend on how the file is sliced. Counts are whole numbers, exact in any order; the money sums
    over both directions need that order, so the incoming rows' amounts are held (14 bytes a row)
    until every outgoing row has been added.
    """
    n = len(universe)
    acc = {name: np.zeros(n) for name in _FIELDS}
    held: list[tuple[npt.NDArray[np.int64], Vector, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]] = []
    # every lookup hashes its value sets again: parts at least as long as the universe keep that
    # cost at a few times the number of flows, whatever the number of alerts
    for part in _at_least(flow_slices(flows), max(len(universe), len(mixers), len(risky))):
        amount = _f64(part.column("amount_usd_sum"), 0.0)
        txs = _f64(part.column("tx_count"), 0.0)
        bidir = _f64(part.column("is_bidirectional"), False)
        sender, receiver = part.column("from_address"), part.column("to_address")
        for side, address, counterparty in (("out", sender, receiver), ("in", receiver, sender)):
            at = _positions(address, universe)
            hit = at >= 0
            if not hit.any():
                continue
            at = at[hit]
            cp = counterparty.filter(pa.array(hit))
            row_amount = amount[hit]
            mixer = _flags(pc.is_in(cp, mixers))
            risk = _flags(pc.is_in(cp, risky))
            np.add.at(acc[f"{side}_count"], at, 1.0)
            np.add.at(acc[f"{side}_usd"], at, row_amount)
            np.add.at(acc[f"{side}_tx"], at, txs[hit])
            np.add.at(acc["bidir"], at, bidir[hit])
            if side == "out":
                _add_money(acc, at, row_amount, mixer, risk)
            else:
                held.append((at.astype(np.int32), row_amount, mixer, risk))
    for at, row_amount, mixer, risk in held:
        _add_money(acc, at.astype(np.int64), row_amount, mixer, risk)
    acc["total_tx"] = acc["out_tx"] + acc["in_tx"]
    acc["links"] = acc["out_count"] + acc["in_count"]
    return FlowTotals(**acc)


_FIELDS = (
    "in_count", "out_count", "in_usd", "out_usd", "in_tx", "out_tx", "total_usd", "total_tx", "links", "bidir",
    "mixer_usd", "risky_usd",
)  # fmt: skip


def _flags(array: pa.Array) -> npt.NDArray[np.bool_]:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), np.bool_)


def _add_money(
    acc: dict[str, Vector], at: npt.NDArray[np.int64], amount: Vector, mixer: npt.NDArray[np.bool_],
    risky: npt.NDArray[np.bool_],
) -> None:  # fmt: skip
    np.add.at(acc["total_usd"], at, amount)
    np.add.at(acc["mixer_usd"], at, amount * mixer)
    np.add.at(acc["risky_usd"], at, amount * risky)
