"""LangGraph's own checkpointer conformance suite (langgraph-checkpoint-conformance) against
EventStoreSaver: every one of the 8 capabilities, through the async methods and, with an
adapter that routes the suite's async calls to the sync methods, through the sync ones."""

from __future__ import annotations

import asyncio
import os
import tempfile
from typing import Any, AsyncIterator

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.checkpoint.conformance.report import ProgressCallbacks

import eventstore
from eventstore.integrations.langgraph import EventStoreSaver


class SyncRoutedSaver(EventStoreSaver):
    """EventStoreSaver whose async methods call the sync ones on the caller's thread, so the
    async-only conformance suite exercises the sync method set."""

    async def aget_tuple(self, config: Any) -> Any:
        return self.get_tuple(config)

    async def alist(self, config: Any, *, filter: Any = None, before: Any = None,
                    limit: Any = None) -> AsyncIterator[Any]:
        for item in self.list(config, filter=filter, before=before, limit=limit):
            yield item

    async def aput(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        self.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.delete_thread(thread_id)

    async def adelete_for_runs(self, run_ids: Any) -> None:
        self.delete_for_runs(run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self.copy_thread(source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Any, *, strategy: str = "keep_latest") -> None:
        self.prune(thread_ids, strategy=strategy)


def _run_suite(saver_class: type[EventStoreSaver]) -> tuple[Any, list[str]]:
    failures: list[str] = []

    def on_result(capability: str, test: str, passed: bool, error: str | None) -> None:
        if not passed:
            failures.append(f"{capability}/{test}: {error}")

    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(100))

        @checkpointer_test(name=f"eventstore-{saver_class.__name__}")
        async def factory() -> AsyncIterator[EventStoreSaver]:
            store = eventstore.open(os.path.join(tmp, f"s{next(counter)}.db"), synchronous="normal")
            try:
                yield saver_class(store)
            finally:
                store.close()

        report = asyncio.run(validate(factory, progress=ProgressCallbacks(on_test_result=on_result)))
    return report, failures


def _assert_all_capabilities_pass(report: Any, failures: list[str]) -> None:
    assert failures == []
    assert set(report.results) == {c.value for c in ALL_CAPABILITIES}
    for name, result in report.results.items():
        assert result.detected, f"capability {name} not detected"
        assert result.passed, f"capability {name} failed: {result.failures}"
        assert result.tests_passed > 0 and result.tests_failed == 0
    assert report.passed_all_base()


def test_conformance_async_methods_pass_all_8_capabilities() -> None:
    """The async method set passes every test of all 8 conformance capabilities."""
    report, failures = _run_suite(EventStoreSaver)
    _assert_all_capabilities_pass(report, failures)


def test_conformance_sync_methods_pass_all_8_capabilities() -> None:
    """The sync method set (routed through an adapter) passes all 8 capabilities too."""
    report, failures = _run_suite(SyncRoutedSaver)
    _assert_all_capabilities_pass(report, failures)
