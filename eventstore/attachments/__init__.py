"""The attachments manifest: attachment intents recorded and forgotten per owner.

This module is the domain's public API: import from `eventstore.attachments`, not its submodules.
"""

from __future__ import annotations

from .facade import (
    AttachmentConflict,
    AttachmentRef,
    Attachments,
    decide_forget_aged,
    parse_target,
    BLOB_URI_PREFIX,
    OWNER_KINDS,
)

__all__ = [
    "AttachmentConflict",
    "AttachmentRef",
    "Attachments",
    "decide_forget_aged",
    "parse_target",
    "BLOB_URI_PREFIX",
    "OWNER_KINDS",
]
