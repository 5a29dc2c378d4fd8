"""Traps and generator parameters live in a store miners cannot read; the validator still finds them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sot.generator import generate_batch
from sot.publisher import write_batch
from streams.batch import MANIFEST, snapshot_key
from streams.objectstore import FileObjectStore, open_stack_store
from streams.settings import StackSettings
from validator.batches import load_batch, read_manifest

DATE = dt.date(2026, 3, 4)


def test_private_material_stays_out_of_the_miners_store(tmp_path: Path) -> None:
    stack = StackSettings(
        _env_file=None,
        object_store_url=f"file://{tmp_path / 'public'}",
        private_store_url=f"file://{tmp_path / 'private'}",
    )
    public, private = open_stack_store(stack), open_stack_store(stack, private=True)
    assert isinstance(public, FileObjectStore) and isinstance(private, FileObjectStore)
    batch = generate_batch("ethereum", DATE, alerts=200, addresses=1_000, flows=5_000, clusters=10, seed=3)
    write_batch(public, batch, private=private)

    assert public.list("snapshots/") and not [k for k in public.list() if "private" in k]
    assert private.list("validator-private/traps/") and private.list("sot-private/")
    assert not private.list("snapshots/")

    manifest = read_manifest(public, snapshot_key("ethereum", DATE, batch.window_days, MANIFEST))
    with_traps = load_batch(public, manifest, private)
    assert len(with_traps.trap_ids) == batch.traps.num_rows > 0
    assert len(load_batch(public, manifest).trap_ids) == 0  # the miners' view has none


def test_the_default_private_store_is_a_directory_of_its_own(tmp_path: Path) -> None:
    stack = StackSettings(_env_file=None, home=tmp_path / "home", object_store_url=f"file://{tmp_path / 'one'}")
    assert open_stack_store(stack, private=True).url == f"file://{tmp_path / 'home' / 'private'}"
    assert open_stack_store(stack, private=True).url != open_stack_store(stack).url
