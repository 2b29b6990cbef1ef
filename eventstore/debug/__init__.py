"""Debugging tools: describe events in words, the state at a position, why a row changed,
diffs between positions, cached time travel, and export/import of whole stores.

This module is the tools' public API: import from `eventstore.debug`, not its submodules.
"""

from __future__ import annotations

from .describe_events import describe
from .export import BadExportLine, ExportError, ExportReport, ImportRefused, ImportTargetNotEmpty, export_store, export_to_path
from .importer import ImportReport, import_store
from .inspection import EventInfo, LeaseSummary, SessionSummary, StateSummary, TableSummary, WhyReport, state_at, why
from .statediff import StateDiff, TableChange, diff
from .timetravel import SnapshotReplay, cache_dir_of, clear_cache, view_at

__all__ = [
    "BadExportLine",
    "EventInfo",
    "ExportError",
    "ExportReport",
    "ImportRefused",
    "ImportReport",
    "ImportTargetNotEmpty",
    "LeaseSummary",
    "SessionSummary",
    "SnapshotReplay",
    "StateDiff",
    "StateSummary",
    "TableChange",
    "TableSummary",
    "WhyReport",
    "cache_dir_of",
    "clear_cache",
    "describe",
    "diff",
    "export_store",
    "export_to_path",
    "import_store",
    "state_at",
    "view_at",
    "why",
]
