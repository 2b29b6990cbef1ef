"""The documentation runs: every ```python block of README.md and docs/*.md executes on its
own in a fresh temporary directory, and every `eventstore <subcommand>` that docs/cli.md
names exists in the command-line parser."""

from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys

import pytest

from eventstore.cli import build_parser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")


def fenced_blocks(path: str) -> list[tuple[int, str, str]]:
    """(line of the opening fence, language, code) for every fenced block of a markdown file."""
    blocks = []
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m:
            start, indent, lang = i + 1, len(m.group(1)), m.group(2)
            body = []
            i += 1
            while i < len(lines) and not (FENCE.match(lines[i]) and lines[i].strip() == "```"):
                body.append(lines[i][indent:])
                i += 1
            blocks.append((start, lang, "\n".join(body) + "\n"))
        i += 1
    return blocks


PYTHON_BLOCKS = [(os.path.relpath(p, ROOT), line, code)
                 for p in DOCS for line, lang, code in fenced_blocks(p) if lang == "python"]


def test_the_docs_have_python_examples_to_run():
    files = {f for f, _line, _code in PYTHON_BLOCKS}
    assert "README.md" in files and "docs/api.md" in files and len(PYTHON_BLOCKS) >= 5


@pytest.mark.parametrize("code", [pytest.param(code, id=f"{f}:{line}") for f, line, code in PYTHON_BLOCKS])
def test_python_block_runs(code, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"


# --- docs/cli.md names only real subcommands ----------------------------------------------------


def cli_doc_commands() -> list[str]:
    """Subcommands named in docs/cli.md: in `eventstore ...` code spans and `$ eventstore ...`
    lines of console blocks (capitalised placeholders such as COMMAND are not names)."""
    with open(os.path.join(ROOT, "docs", "cli.md"), encoding="utf-8") as fh:
        text = fh.read()
    names = re.findall(r"`eventstore ([a-z][a-z0-9_-]*)", text)
    names += re.findall(r"^\s*\$ eventstore ([a-z][a-z0-9_-]*)", text, flags=re.M)
    return sorted(set(names))


def parser_commands() -> set[str]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def test_cli_doc_names_the_core_commands():
    assert {"demo", "info", "log", "verify", "rebuild", "checkpoint"} <= set(cli_doc_commands())


@pytest.mark.parametrize("command", cli_doc_commands())
def test_command_named_in_cli_doc_exists(command):
    assert command in parser_commands(), f"docs/cli.md names `eventstore {command}`, which the CLI lacks"
