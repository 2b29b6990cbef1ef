"""docs/cli.md runs as written: in an empty folder, every `$ eventstore ...` line of its
console blocks runs in order (the first is `eventstore demo demo.db`), exits 0, and the
lines shown under it appear in its output in order (`...` stands for anything: times,
hashes and ids generated from the clock)."""

from __future__ import annotations

import os
import re
import shlex

from eventstore.cli import main
from tests.test_inspect_cli import matches

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "cli.md")


def console_steps(path: str) -> list[tuple[str, list[str]]]:
    """(command line, expected output lines) for every `$ ` line of the file's console blocks."""
    with open(path, encoding="utf-8") as fh:
        blocks = re.findall(r"^```console\n(.*?)^```", fh.read(), flags=re.S | re.M)
    steps: list[tuple[str, list[str]]] = []
    for block in blocks:
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif line.strip() and steps:
                steps[-1][1].append(line)
    return steps


def test_every_command_in_cli_md_runs_as_documented_on_the_demo_store(tmp_path, monkeypatch, capsys):
    """The demo's fixed ids make each documented command work on a fresh demo.db."""
    monkeypatch.chdir(tmp_path)
    steps = console_steps(DOC)
    assert steps[0][0] == "eventstore demo demo.db" and len(steps) >= 25
    for command, expected in steps:
        argv = shlex.split(command)
        assert argv[0] == "eventstore", command
        code = main(argv[1:])
        out, err = capsys.readouterr()
        assert code == 0, f"{command}: exit {code}: {err}"
        missing = matches(expected, (out + err).splitlines())
        assert missing is None, f"{command}: the documented line {missing!r} is not printed:\n{out}{err}"


def test_the_doc_check_fails_on_a_line_the_command_does_not_print():
    """Guard against a vacuous pass: an expected line that is not printed is reported."""
    printed = ["ok: 57 events verified, head 57:ab"]
    assert matches(["ok: 58 events verified, head 58:..."], printed) is not None
    assert matches(["a ... c"], ["x", "a b c"]) is None
