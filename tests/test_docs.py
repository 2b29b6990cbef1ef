"""The documentation runs and shows what it says: every ```python block of README.md and
docs/*.md executes on its own in a fresh temporary directory, every `eventstore <subcommand>`
that docs/cli.md names exists in the command-line parser, and every output comment in a block
is what the block really prints.

The output-comment convention. A statement `print(...)` in a ```python block that ends in a
`# comment` states its output: the comment is the printed line, exactly (whitespace at
either end ignored). `...` in it stands for any text (hashes, times, ids, long reprs). An
explanation, when wanted, follows the output after ` — ` (space, em dash, space), so
`# True — live == rebuild` means the print shows `True`; without ` — ` the whole comment is
output, colons and parentheses included (`# refused: subscription_exists`). A print in a loop
must match on every iteration, and a commented print that never runs is a failure. Prints
without a trailing comment, and comments on other lines, are not checked.

How: `checked_prints` finds those statements with `tokenize` (so a `#` inside a string is not
a comment), `instrument` replaces their `print` by `__doc_print__(<markdown line>)`, which
prints as `print` does and records the text, and `run_block` runs the block in a subprocess
and compares each recorded text with its comment.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import re
import subprocess
import sys
import tokenize
from typing import NamedTuple

import pytest

from eventstore.cli import build_parser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
EXPLANATION = " — "
WILDCARD = "..."


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


# --- output comments: finding, instrumenting, running, comparing -------------------------------


def expected_output(comment: str) -> str:
    """The output a `# comment` states: the text after `#`, up to an ` — ` explanation."""
    return comment.lstrip("#").split(EXPLANATION, 1)[0].strip()


def output_matches(expected: str, actual: str) -> bool:
    """True when `actual` is `expected` with each `...` standing for any text (newlines too)."""
    pattern = ".*".join(re.escape(part) for part in expected.strip().split(WILDCARD))
    return re.fullmatch(pattern, actual.strip(), flags=re.S) is not None


class CheckedPrint(NamedTuple):
    line: int       # 1-based line of `print` in the code
    column: int
    expected: str   # the output the comment states


def checked_prints(code: str) -> list[CheckedPrint]:
    """Every statement that is a `print(...)` call ending in a comment on its last line."""
    tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    found = []
    statement_start = True
    for i, tok in enumerate(tokens):
        if tok.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            statement_start = True
            continue
        if tok.type in (tokenize.NL, tokenize.COMMENT):
            continue
        if (statement_start and tok.type == tokenize.NAME and tok.string == "print"
                and tokens[i + 1].string == "("):
            close = matching_paren(tokens, i + 1)
            after = tokens[close + 1:close + 3]
            if (len(after) == 2 and after[0].type == tokenize.COMMENT
                    and after[1].type == tokenize.NEWLINE):
                found.append(CheckedPrint(tok.start[0], tok.start[1], expected_output(after[0].string)))
        statement_start = False
    return found


def matching_paren(tokens: list[tokenize.TokenInfo], opening: int) -> int:
    depth = 0
    for j in range(opening, len(tokens)):
        if tokens[j].type == tokenize.OP and tokens[j].string in "([{":
            depth += 1
        elif tokens[j].type == tokenize.OP and tokens[j].string in ")]}":
            depth -= 1
            if depth == 0:
                return j
    raise ValueError("unbalanced parentheses")


def instrument(code: str, first_line: int, prints: list[CheckedPrint]) -> str:
    """`code` with each checked `print` replaced by `__doc_print__(<markdown line>)`, which
    returns a print that also records its text; line numbers are unchanged."""
    lines = code.splitlines(keepends=True)
    for p in prints:
        text = lines[p.line - 1]
        assert text[p.column:p.column + 5] == "print"
        lines[p.line - 1] = f"{text[:p.column]}__doc_print__({first_line + p.line}){text[p.column + 5:]}"
    return "".join(lines)


# Runs as `python -c RUNNER REPORT FILENAME FIRST_LINE CODE`: installs __doc_print__, runs CODE
# as __main__ with tracebacks naming the markdown file and line, and writes the recorded
# [markdown line, printed text] pairs to REPORT as JSON, even when CODE fails.
RUNNER = '''
def _run():
    import builtins, json, sys
    report, filename, first_line, code = sys.argv[1:5]
    del sys.argv[1:]
    printed = []

    def doc_print(line):
        def checked_print(*args, sep=None, end=None, file=None, flush=False):
            text = (" " if sep is None else sep).join(map(str, args)) + ("\\n" if end is None else end)
            printed.append([line, text])
            out = sys.stdout if file is None else file
            if out is not None:
                out.write(text)
                if flush:
                    out.flush()
        return checked_print

    builtins.__doc_print__ = doc_print
    try:
        exec(compile("\\n" * int(first_line) + code, filename, "exec"), globals())
    finally:
        with open(report, "w", encoding="utf-8") as fh:
            json.dump(printed, fh)

_run()
'''


class BlockRun(NamedTuple):
    returncode: int
    stdout: str
    stderr: str
    mismatches: list[str]


def run_block(code: str, doc: str, first_line: int, workdir) -> BlockRun:
    """Run a markdown block (its opening fence on `first_line` of `doc`) in a fresh directory
    under `workdir`, checking each output comment; a mismatch names `doc`, the markdown
    line, the expected and the printed output."""
    prints = checked_prints(code)
    cwd, report = os.path.join(workdir, "block"), os.path.join(workdir, "printed.json")
    os.makedirs(cwd)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    filename = doc if os.path.isabs(doc) else os.path.join(ROOT, doc)
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, report, filename, str(first_line), instrument(code, first_line, prints)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    printed: dict[int, list[str]] = {}
    if os.path.exists(report):
        with open(report, encoding="utf-8") as fh:
            for line, text in json.load(fh):
                printed.setdefault(line, []).append(text)
    mismatches = []
    for p in prints:
        line = first_line + p.line
        texts = printed.get(line)
        if texts is None:
            mismatches.append(f"{doc}:{line}: expected {p.expected!r}, but the line never printed")
        for text in dict.fromkeys(texts or []):
            if not output_matches(p.expected, text):
                mismatches.append(f"{doc}:{line}: expected {p.expected!r}, printed {text.strip()!r}")
    return BlockRun(result.returncode, result.stdout, result.stderr, mismatches)


def test_the_docs_have_python_examples_to_run():
    files = {f for f, _line, _code in PYTHON_BLOCKS}
    assert "README.md" in files and "docs/api.md" in files and len(PYTHON_BLOCKS) >= 5


def test_the_docs_have_output_comments_to_check():
    assert sum(len(checked_prints(code)) for _f, _line, code in PYTHON_BLOCKS) >= 100


@pytest.mark.parametrize("doc,line,code", [pytest.param(f, line, code, id=f"{f}:{line}")
                                           for f, line, code in PYTHON_BLOCKS])
def test_python_block_runs_and_prints_what_its_comments_say(doc, line, code, tmp_path):
    run = run_block(code, doc, line, tmp_path)
    if run.returncode != 0:
        pytest.fail(f"the block failed\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}", pytrace=False)
    if run.mismatches:
        pytest.fail("output comments that are not what the block prints:\n" + "\n".join(run.mismatches),
                    pytrace=False)


# --- the checker itself --------------------------------------------------------------------------


def test_output_matches_is_exact_except_for_wildcards():
    assert output_matches("1 2", "1 2\n")
    assert not output_matches("1 2", "1 2 3")
    assert not output_matches("1  2", "1 2")
    assert output_matches("s... active 1", "s2 active 1")
    assert output_matches("Success(value={...})", "Success(value={'a': 1})")
    assert output_matches("a...b", "ab") and output_matches("...", "two\nlines")
    assert not output_matches("1 ... 3", "1 2 4")
    assert not output_matches("x.y", "xzy"), "only `...` is special"


def test_the_output_of_a_comment_ends_at_an_em_dash_explanation():
    assert expected_output("# True — live == rebuild") == "True"
    assert expected_output("# refused: subscription_exists") == "refused: subscription_exists"
    assert expected_output("#  0 (law 63)") == "0 (law 63)"


def test_only_print_statements_ending_in_a_real_comment_are_checked():
    code = ('print("a # b")\n'                      # `#` inside a string is not a comment
            'print("c # d")  # c # d\n'
            'x = print  # not a print statement\n'
            'if x: print(1)  # not at the start of a statement\n'
            'print(1,\n'
            '      2)  # 1 2\n'
            'print(len("#"), 3)  # 1 3 — explained\n'
            '# print(4)  # a commented-out print\n')
    assert [(p.line, p.expected) for p in checked_prints(code)] == [(2, "c # d"), (5, "1 2"), (7, "1 3")]


def test_checker_names_the_line_of_a_wrong_output_comment(tmp_path):
    code = ('x = 2\n'
            'print(x + 1)                # 4\n'
            'print("x", x, sep="=")      # x=2\n'
            'print("s1 active 1")        # s... active ... — explained\n'
            'print("#", end="")          # #\n'
            'print()\n'
            'print("unchecked")\n')
    run = run_block(code, "example.md", 10, tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.mismatches == ["example.md:12: expected '4', printed '3'"]
    assert run.stdout == "3\nx=2\ns1 active 1\n#\nunchecked\n", "checked prints still print"


def test_checker_checks_every_iteration_and_reports_a_print_that_never_ran(tmp_path):
    code = ('for i in range(3):\n'
            '    print("i", i)  # i 0\n'
            'if False:\n'
            '    print("never")  # never\n')
    run = run_block(code, "loop.md", 1, tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.mismatches == ["loop.md:3: expected 'i 0', printed 'i 1'",
                              "loop.md:3: expected 'i 0', printed 'i 2'",
                              "loop.md:5: expected 'never', but the line never printed"]


def test_a_failing_block_reports_its_markdown_line(tmp_path):
    run = run_block('print(1)  # 1\nraise SystemExit("boom" + str(1 / 0))\n', "fail.md", 40, tmp_path)
    assert run.returncode != 0 and 'fail.md", line 42' in run.stderr
    assert run.mismatches == []


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
