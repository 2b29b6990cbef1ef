"""Checkpoints as content-addressed blobs, and blob GC (mark and sweep).

A checkpoint is stored as blobs: each inline snapshot (tool state, plugin snapshot,
execution state) becomes its own blob, then a manifest naming them is stored as a blob
too; the checkpoint ref is the manifest's hash. Identical snapshots across turns or
sessions cost nothing extra.

GC marks from the roots the projections hold (each session head's checkpoint and its
children, agent frames' execution-state refs, named artifact pointers, attachment
refs, and any root provider another domain registers) and sweeps every other blob, in
one write transaction, recording the run as an event.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, cast, Iterable

import attrs

from .. import codec
from ..errors import StoreError
from .model import Checkpoint, CheckpointManifest, TurnState

MANIFEST_SCHEMA_VERSION = 1

_manifest_codec = codec.class_codec(CheckpointManifest)
_turn_state_codec = codec.class_codec(TurnState)


class CheckpointDecodeError(StoreError):
    """A checkpoint manifest blob cannot be decoded (or has an unsupported schema_version)."""


def store_checkpoint_ref(blobs: Any, checkpoint: Checkpoint) -> str:
    """`store_checkpoint`, returning the checkpoint ref alone (what a commit needs): a
    checkpoint that is a turn state alone is written without building its manifest."""
    # stamp=False: these blobs are rooted by the commit that writes them, in its transaction.
    if (checkpoint.__class__ is Checkpoint and checkpoint.turn_state.__class__ is TurnState
            and checkpoint.tool_state is None and checkpoint.tool_state_ref is None
            and checkpoint.plugin_snapshot is None and checkpoint.plugin_snapshot_ref is None
            and checkpoint.plugin_snapshot_revision is None
            and checkpoint.execution_state is None and checkpoint.execution_state_ref is None):
        # Its manifest's plain form written out: what `_manifest_codec.to_plain` gives
        # for it, field for field and in order (a test compares the two).
        try:
            turn_state = _turn_state_codec.to_plain(checkpoint.turn_state)
        except codec.ShapeError:
            turn_state = None  # the full path raises it, naming the field from the manifest down
        if turn_state is not None:
            plain = {"schema_version": MANIFEST_SCHEMA_VERSION, "turn_state": turn_state,
                     "tool_state_ref": None, "plugin_snapshot_ref": None, "plugin_snapshot_revision": None,
                     "execution_state_ref": None}
            return cast("str", blobs.put(codec.pack(plain), stamp=False))
    return store_checkpoint(blobs, checkpoint)[0]


def store_checkpoint(blobs: Any, checkpoint: Checkpoint) -> tuple[str, CheckpointManifest]:
    """Write the snapshots and the manifest as blobs; returns (checkpoint ref, manifest).

    Must run inside the commit's write transaction, so that GC (which takes the same
    lock) can never see the blobs before the head that roots them.
    """
    # stamp=False: these blobs are rooted by the commit that writes them, in its transaction.
    tool_ref = (blobs.put(checkpoint.tool_state, stamp=False) if checkpoint.tool_state is not None
                else checkpoint.tool_state_ref)
    plugin_ref = (blobs.put(checkpoint.plugin_snapshot, stamp=False) if checkpoint.plugin_snapshot is not None
                  else checkpoint.plugin_snapshot_ref)
    exec_ref = (blobs.put(checkpoint.execution_state, stamp=False) if checkpoint.execution_state is not None
                else checkpoint.execution_state_ref)
    manifest = CheckpointManifest(MANIFEST_SCHEMA_VERSION, checkpoint.turn_state, tool_ref, plugin_ref,
                                  checkpoint.plugin_snapshot_revision, exec_ref)
    ref = blobs.put(codec.pack(_manifest_codec.to_plain(manifest)), stamp=False)
    return ref, manifest


def decode_manifest(data: bytes, ref: str) -> CheckpointManifest:
    """Decode a manifest blob, with typed errors for a bad shape or schema_version."""
    try:
        plain = codec.unpack(data)
    except codec.ShapeError as exc:
        raise CheckpointDecodeError(f"checkpoint {ref}: {exc}") from None
    if not isinstance(plain, dict) or "schema_version" not in plain:
        raise CheckpointDecodeError(f"checkpoint {ref}: missing schema_version")
    version = plain["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointDecodeError(f"checkpoint {ref}: invalid schema_version {version!r}")
    if version != MANIFEST_SCHEMA_VERSION:
        raise CheckpointDecodeError(
            f"checkpoint {ref}: unsupported schema_version {version} (this code reads {MANIFEST_SCHEMA_VERSION})")
    try:
        return cast("CheckpointManifest", _manifest_codec.from_plain(plain))
    except codec.ShapeError as exc:
        raise CheckpointDecodeError(f"checkpoint {ref}: {exc}") from None


def load_checkpoint(blobs: Any, ref: str | None) -> Checkpoint | None:
    """Hydrate a checkpoint: the manifest and its children (a missing child is None)."""
    if ref is None or not blobs.has(ref):
        return None
    manifest = decode_manifest(blobs.get(ref), ref)

    def child(child_ref: str | None) -> bytes | None:
        return blobs.get(child_ref) if child_ref is not None and blobs.has(child_ref) else None

    return Checkpoint(
        turn_state=manifest.turn_state,
        tool_state=child(manifest.tool_state_ref),
        tool_state_ref=manifest.tool_state_ref,
        plugin_snapshot=child(manifest.plugin_snapshot_ref),
        plugin_snapshot_ref=manifest.plugin_snapshot_ref,
        plugin_snapshot_revision=manifest.plugin_snapshot_revision,
        execution_state=child(manifest.execution_state_ref),
        execution_state_ref=manifest.execution_state_ref,
    )


# --- GC ----------------------------------------------------------------------------------

RootProvider = Callable[[Any], Iterable[str]]
_ROOT_PROVIDERS: dict[str, RootProvider] = {}


def register_gc_roots(name: str, provider: RootProvider) -> None:
    """Let another domain add GC roots: `provider(db)` yields blob refs to keep."""
    _ROOT_PROVIDERS[name] = provider


@attrs.frozen
class GcReport:
    """What a GC run found and did."""

    root_count: int
    retained_blob_count: int
    deleted_blob_count: int
    deleted_refs: tuple[str, ...] = ()
    """The refs deleted (or, for a dry run, that would be deleted), sorted."""
    dry_run: bool = False
    aborted: str | None = None
    """Why the run kept everything (a rooted manifest that cannot be decoded), or None."""
    spared_young_count: int = 0
    """Unrooted blobs kept because they were put less than the minimum age ago."""


def mark_and_sweep(db: Any, blobs: Any, manifests: set[str], others: set[str]) -> tuple[set[str], list[str]]:
    """Return (marked refs, unmarked refs). Raises CheckpointDecodeError when a rooted
    manifest is present but undecodable: GC must then keep everything."""
    for _name, provider in _ROOT_PROVIDERS.items():
        others |= set(provider(db))
    marked: set[str] = set()
    for ref in manifests:
        if not blobs.has(ref):
            continue  # a missing rooted manifest is skipped (docs/semantics.md §2)
        marked.add(ref)
        m = decode_manifest(blobs.get(ref), ref)
        for child in (m.tool_state_ref, m.plugin_snapshot_ref, m.execution_state_ref):
            if child is not None:
                marked.add(child)
    marked |= others
    unmarked = [ref for ref in blobs.refs() if ref not in marked]
    return marked, unmarked


def deleted_digest(refs: Iterable[str]) -> str:
    """SHA-256 of the sorted refs joined by newlines (what the GC event records)."""
    return hashlib.sha256("\n".join(sorted(refs)).encode()).hexdigest()
