"""The benchmark harness (tools/bench.py): discovery, rows, ratios, targets, docs rewriting.

Only the harness is tested here, with fake benchmark modules written into a temporary
directory: no real benchmark runs, no timing assertions, and eventsourcing is not needed.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_harness_under_test", ROOT / "tools" / "bench.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench
_spec.loader.exec_module(bench)

FAKE = '''
import os

TITLE = "Fake things"
SEEN = []

def run(workdir, quick):
    SEEN.append((workdir, os.getcwd(), quick, os.path.isdir(workdir)))
    return [
        {"work": "raw", "value": 1000.0, "unit": "ops/s", "reference": None, "reference_name": "", "note": ""},
        {"work": "ours", "value": 600.0, "unit": "ops/s", "reference": 1000.0, "reference_name": "raw",
         "note": "fast | enough", "target": "ratio >= 0.5"},
        {"work": "slow", "value": 300.0, "unit": "ops/s", "reference": 1000.0, "reference_name": "raw",
         "note": "", "target": "ratio >= 0.5"},
        {"work": "memory", "value": 40.0, "unit": "MiB", "reference": None, "reference_name": "",
         "note": "", "target": "value <= 32"},
        {"work": "absent", "value": None, "unit": "ops/s", "reference": 1000.0, "reference_name": "raw",
         "note": "not installed", "target": "ratio >= 0.1"},
    ]
'''


@pytest.fixture
def bench_dir(tmp_path, monkeypatch):
    """A package of fake benchmark modules, with a name unique to the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    d = tmp_path / f"fakebenches_{tmp_path.name}"
    d.mkdir()
    (d / "__init__.py").write_text("")
    (d / "fake.py").write_text(FAKE)
    (d / "core.py").write_text("TITLE = 'Core'\ndef run(workdir, quick):\n    return []\n")
    (d / "_helpers.py").write_text("raise RuntimeError('private modules are never imported')\n")
    (d / "notes.txt").write_text("not a module")
    return d


def _result(rows, name="fake", title="Fake things", error=None):
    return bench.ModuleResult(name, title, tuple(rows), 1.0, False, "2026-01-01 00:00 UTC", error)


def _machine():
    return bench.Machine("Test CPU", 2, "3.11.7", "3.54.1", "3.54.1.0", "ext4", 0.2, "Linux", "2026-01-01 00:00 UTC")


def test_discovery_lists_public_modules_with_core_first(bench_dir):
    (bench_dir / "alpha.py").write_text("TITLE = 'A'\ndef run(w, q):\n    return []\n")
    assert bench.module_names(bench_dir) == ["core", "alpha", "fake"]


def test_load_module_returns_title_and_run(bench_dir):
    module = bench.load_module("fake", bench_dir)
    assert module.name == "fake"
    assert module.title == "Fake things"
    assert callable(module.run)


def test_load_module_without_title_names_the_file(bench_dir):
    (bench_dir / "broken.py").write_text("def run(w, q):\n    return []\n")
    with pytest.raises(bench.BenchError, match=r"broken\.py: TITLE"):
        bench.load_module("broken", bench_dir)


def test_load_module_that_fails_to_import_names_the_file(bench_dir):
    (bench_dir / "crashing.py").write_text("raise ImportError('no such driver')\n")
    with pytest.raises(bench.BenchError, match=r"crashing\.py: import failed.*no such driver"):
        bench.load_module("crashing", bench_dir)


def test_load_unknown_module_lists_the_known_ones(bench_dir):
    with pytest.raises(bench.BenchError, match="no benchmark module 'nope'.*core, fake"):
        bench.load_module("nope", bench_dir)


def test_run_module_runs_in_a_fresh_directory_that_is_removed(bench_dir, tmp_path):
    module = bench.load_module("fake", bench_dir)
    cwd = os.getcwd()
    result = bench.run_module(module, quick=True, tmp_parent=str(tmp_path))
    seen = sys.modules[f"{bench_dir.name}.fake"].SEEN
    workdir, cwd_inside, quick, existed = seen[-1]
    assert existed and quick is True
    assert os.path.realpath(cwd_inside) == os.path.realpath(workdir)
    assert os.path.dirname(workdir) == str(tmp_path)
    assert not os.path.exists(workdir)
    assert os.getcwd() == cwd
    assert result.error is None and result.quick is True
    assert [r.work for r in result.rows] == ["raw", "ours", "slow", "memory", "absent"]


def test_ratio_is_value_over_reference_and_targets_are_computed(bench_dir, tmp_path):
    rows = {r.work: r for r in bench.run_module(bench.load_module("fake", bench_dir), False, str(tmp_path)).rows}
    assert rows["raw"].ratio is None and rows["raw"].met is None
    assert rows["ours"].ratio == pytest.approx(0.6)
    assert rows["ours"].met is True
    assert rows["slow"].ratio == pytest.approx(0.3)
    assert rows["slow"].met is False
    assert rows["memory"].met is False  # a value target: 40 MiB is over 32
    assert rows["absent"].ratio is None and rows["absent"].met is None


def test_a_failing_module_is_reported_not_raised(bench_dir, tmp_path):
    (bench_dir / "boom.py").write_text("TITLE = 'Boom'\ndef run(w, q):\n    raise ValueError('disk on fire')\n")
    result = bench.run_module(bench.load_module("boom", bench_dir), False, str(tmp_path))
    assert result.rows == ()
    assert result.error == "ValueError: disk on fire"


def test_a_malformed_row_is_an_error_naming_the_module_and_row(bench_dir, tmp_path):
    (bench_dir / "badrow.py").write_text(
        "TITLE = 'Bad'\ndef run(w, q):\n    return [{'work': 'x', 'value': 1.0}, {'work': 'y', 'value': 'fast'}]\n")
    result = bench.run_module(bench.load_module("badrow", bench_dir), False, str(tmp_path))
    assert "badrow row 2 (y): value must be a number" in result.error


@pytest.mark.parametrize("raw, message", [
    ({"value": 1.0}, "'work' must be a non-empty string"),
    ({"work": "w"}, "'value' is missing"),
    ({"work": "w", "value": True}, "value must be a number"),
    ({"work": "w", "value": 1.0, "reference": "big"}, "reference must be a number"),
    ({"work": "w", "value": 1.0, "target": "ratio > 0.5"}, "target 'ratio > 0.5' must look like"),
])
def test_make_row_rejects_rows_that_break_the_interface(raw, message):
    with pytest.raises(bench.BenchError, match=message):
        bench.make_row(raw, "m row 1")


@pytest.mark.parametrize("text, value, ratio, met", [
    ("ratio >= 0.5", 10.0, 0.5, True),
    ("ratio >= 0.5", 10.0, 0.49, False),
    ("value >= 200000", 200_001.0, None, True),
    ("value >= 200_000", 199_999.0, None, False),
    ("value <= 32", 32.0, None, True),
    ("value <= 32", 32.5, None, False),
    ("ratio >= 0.4", None, None, None),
])
def test_target_met_is_computed_from_the_figures(text, value, ratio, met):
    assert bench.Target.parse(text).met(value, ratio) is met


def test_table_cells_show_ratio_reference_and_verdict():
    row = bench.make_row({"work": "ours", "value": 600.0, "unit": "ops/s", "reference": 1000.0,
                          "reference_name": "raw", "note": "n", "target": "ratio >= 0.9"}, "m")
    assert bench.table_cells(row) == ["ours", "600", "ops/s", "1,000 (raw)", "0.60x", "ratio >= 0.90x: NOT met", "n"]


def test_format_number_for_big_small_and_missing_figures():
    assert bench.format_number(1234567.8) == "1,234,568"
    assert bench.format_number(32.0) == "32"
    assert bench.format_number(12.34) == "12.3"
    assert bench.format_number(2.456) == "2.46"
    assert bench.format_number(None) == "—"


DOC = """# Benchmarks

Hand-written introduction | with a pipe.

<!-- bench:begin -->
old generated text
<!-- bench:end -->

## Reading the figures

Hand-written reading.
"""


def test_update_docs_keeps_the_text_outside_the_markers():
    rows = [bench.make_row({"work": "ours", "value": 5.0, "reference": 10.0, "target": "ratio >= 0.4"}, "m")]
    new = bench.update_docs(DOC, [_result(rows)], _machine())
    before, after = DOC.split(bench.BEGIN)[0], DOC.split(bench.END)[1]
    assert new.startswith(before + bench.BEGIN)
    assert new.endswith(bench.END + after)
    assert "old generated text" not in new
    assert "### Fake things" in new and "### Machine" in new and "Test CPU, 2 cores" in new
    assert "| ours | 5 |  | 10 | 0.50x | ratio >= 0.40x: met |  |" in new


def test_update_docs_replaces_only_the_sections_of_modules_that_ran():
    first = bench.update_docs(DOC, [_result([bench.make_row({"work": "a1", "value": 1.0}, "m")], name="alpha",
                                            title="Alpha"),
                                    _result([bench.make_row({"work": "c1", "value": 1.0}, "m")], name="core",
                                            title="Core")], _machine())
    second = bench.update_docs(first, [_result([bench.make_row({"work": "a2", "value": 2.0}, "m")], name="alpha",
                                               title="Alpha")], _machine())
    assert "| a2 |" in second and "| a1 |" not in second
    assert "| c1 |" in second
    assert second.index("### Core") < second.index("### Alpha")  # core first, then by name
    assert second.count(bench.BEGIN) == 1 and second.count("<!-- bench:module alpha -->") == 1


def test_update_docs_keeps_the_old_section_of_a_module_that_failed():
    first = bench.update_docs(DOC, [_result([bench.make_row({"work": "kept", "value": 1.0}, "m")])], _machine())
    second = bench.update_docs(first, [_result([], error="RuntimeError: broken")], _machine())
    assert "| kept |" in second and "broken" not in second


def test_update_docs_appends_the_markers_when_missing():
    new = bench.update_docs("# Benchmarks\n\nIntro.\n", [_result([])], _machine())
    assert new.startswith("# Benchmarks\n\nIntro.\n")
    assert bench.BEGIN in new and new.rstrip().endswith(bench.END)


def test_update_docs_escapes_pipes_in_cells():
    row = bench.make_row({"work": "a|b", "value": 1.0, "note": "x | y"}, "m")
    new = bench.update_docs(DOC, [_result([row])], _machine())
    assert "| a\\|b |" in new and "x \\| y" in new


def test_main_runs_selected_modules_and_writes_the_docs(bench_dir, tmp_path, capsys, monkeypatch):
    docs = tmp_path / "benchmarks.md"
    docs.write_text(DOC)
    monkeypatch.setattr(bench, "BENCH_DIR", bench_dir)
    status = bench.main(["--only", "fake", "--quick", "--write-docs", "--docs", str(docs), "--tmp", str(tmp_path)])
    assert status == 0
    out = capsys.readouterr().out
    assert "Fake things" in out and "0.60x" in out and "NOT met" in out
    text = docs.read_text()
    assert "quick run" in text and "<!-- bench:module fake -->" in text
    assert "<!-- bench:module core -->" not in text  # --only: core did not run
    assert text.endswith(DOC.split(bench.END)[1])


def test_main_exits_non_zero_when_a_module_fails(bench_dir, tmp_path, monkeypatch, capsys):
    (bench_dir / "boom.py").write_text("TITLE = 'Boom'\ndef run(w, q):\n    raise ValueError('disk on fire')\n")
    monkeypatch.setattr(bench, "BENCH_DIR", bench_dir)
    assert bench.main(["--only", "boom", "--tmp", str(tmp_path)]) == 1
    assert "disk on fire" in capsys.readouterr().out


def test_main_rejects_an_unknown_module_name(bench_dir, monkeypatch):
    monkeypatch.setattr(bench, "BENCH_DIR", bench_dir)
    with pytest.raises(SystemExit):
        bench.main(["--only", "nope"])
