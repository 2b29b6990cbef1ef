"""The session graph: runtime commits with head CAS, checkpoints and blobs, the token ledger,
tombstones, vacuum and blob GC.

This module is the domain's public API: import from `eventstore.commits`, not its submodules.
"""

from __future__ import annotations

from .events import (
    ArtifactRefSet,
    AttachmentIntentRecorded,
    AttachmentIntentsForgotten,
    AttachmentsCommitted,
    BlobGcRan,
    CommitDetails,
    HeadChange,
    NodesTombstoned,
    session_of,
    SESSION_STREAM_PREFIX,
    SessionCommitted,
    SessionVacuumed,
    StoredNode,
)
from .checkpoints import (
    CheckpointDecodeError,
)
from .commit import (
    check_commit,
    run_commit,
    RuntimeCommit,
)
from .maintenance import (
    ARTIFACT_NAMESPACES,
    Artifacts,
    gc,
    GC_STREAM,
    tombstone_nodes,
    vacuum,
    vacuum_all,
    VacuumReport,
    StoreVacuumReport,
    DEFAULT_GC_MIN_AGE_MS,
)
from .model import (
    AgentFrame,
    Checkpoint,
    CheckpointManifest,
    EventPayload,
    GraphAppend,
    GraphReplace,
    GraphUnchanged,
    ModelConfig,
    PluginPayload,
    RuntimeCommitResult,
    SessionNode,
    TurnStamp,
    TurnState,
    UsageDelta,
)
from .reads import (
    load_node,
    load_session,
)
from .rules import (
    HeadRevisionConflict,
    InvalidGraphDelta,
    RuntimeTurnCommitConflict,
    SessionBindingMismatch,
)
from .turn_hash import (
    stamp_turn,
    turn_commit_hash,
)

__all__ = [
    "CheckpointManifest",
    "RuntimeCommitResult",
    "AgentFrame",
    "ARTIFACT_NAMESPACES",
    "ArtifactRefSet",
    "Artifacts",
    "AttachmentIntentRecorded",
    "AttachmentIntentsForgotten",
    "AttachmentsCommitted",
    "BlobGcRan",
    "check_commit",
    "Checkpoint",
    "CheckpointDecodeError",
    "CommitDetails",
    "EventPayload",
    "gc",
    "GC_STREAM",
    "GraphAppend",
    "GraphReplace",
    "GraphUnchanged",
    "HeadChange",
    "HeadRevisionConflict",
    "InvalidGraphDelta",
    "load_node",
    "load_session",
    "ModelConfig",
    "NodesTombstoned",
    "PluginPayload",
    "run_commit",
    "RuntimeCommit",
    "RuntimeTurnCommitConflict",
    "session_of",
    "SESSION_STREAM_PREFIX",
    "SessionBindingMismatch",
    "SessionCommitted",
    "SessionNode",
    "SessionVacuumed",
    "stamp_turn",
    "StoredNode",
    "tombstone_nodes",
    "turn_commit_hash",
    "TurnStamp",
    "TurnState",
    "UsageDelta",
    "vacuum",
    "VacuumReport",
    "vacuum_all",
    "StoreVacuumReport",
    "DEFAULT_GC_MIN_AGE_MS",
]
