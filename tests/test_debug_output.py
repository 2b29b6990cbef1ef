"""What log, why and diff print for a person: the text of chat messages in the shape the
API recommends, and row diffs that list every row they count (or say how many more) with
keys a person knows (the session and node ids, not internal numbers)."""

from __future__ import annotations

import json

import pytest

import eventstore
from eventstore.cli import main
from eventstore.commits import EventPayload, GraphAppend, RuntimeCommit, SessionNode
from eventstore.leases import LeaseOwner
from eventstore.sessions import SessionMeta


def _message(role: str, text: str) -> dict:
    """The message shape docs/api.md recommends: a role and a list of parts."""
    return {"role": role, "id": "1557a249c0ffee00" * 2, "parts": [{"kind": "text", "content": text}]}


@pytest.fixture(scope="module")
def chat(tmp_path_factory) -> str:
    """Session `chat-1`: one commit of two messages (position 3), then one of six (position 4)."""
    path = str(tmp_path_factory.mktemp("chat") / "chat.db")
    with eventstore.open(path, clock=eventstore.ManualClock(1_700_000_000_000)) as store:
        store.sessions.create("chat-1", SessionMeta(name="chat"))
        fence = store.leases.claim("chat-1", LeaseOwner("rt", "inc-1"), 30_000).lease.fence
        first = (SessionNode("u1", EventPayload(_message("user", "Where is my parcel?"))),
                 SessionNode("a1", EventPayload({"role": "assistant", "parts": [
                     {"kind": "text", "content": "It left the depot"}, {"kind": "tool_call", "name": "track"},
                     {"kind": "text", "content": "this morning."}]}), "u1"))
        store.sessions.commit(RuntimeCommit("chat-1", fence, GraphAppend(first, "a1")))
        more = []
        parent = "a1"
        for i in range(2, 8):
            more.append(SessionNode(f"n{i}", EventPayload(_message("user", f"message {i}")), parent))
            parent = f"n{i}"
        store.sessions.commit(RuntimeCommit("chat-1", fence, GraphAppend(tuple(more), parent)))
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_log_shows_the_text_of_role_and_parts_messages(chat, capsys):
    """`log`: `user: 'Where is my parcel?'`, not `{role: 'user', id: …, parts: […]}`."""
    code, out, _ = run(capsys, "log", chat, "--stream", "session:chat-1")
    assert code == 0
    line = next(line for line in out.splitlines() if "committed revision 1" in line)
    assert "user: 'Where is my parcel?'" in line
    assert "assistant: 'It left the depot [tool_call] this morning.'" in line
    assert "parts:" not in line and "1557a249" not in line


def test_why_and_diff_show_the_message_text_too(chat, capsys):
    """`why` and `diff` describe the commit with the same readable line."""
    code, out, _ = run(capsys, "why", chat, "--stream", "session:chat-1", "--version", "3")
    assert code == 0 and "user: 'Where is my parcel?'" in out.splitlines()[1]
    code, out, _ = run(capsys, "diff", chat, "--from", "2", "--to", "3")
    assert code == 0 and "user: 'Where is my parcel?'" in out and "parts:" not in out


def test_describe_value_of_other_dicts_is_unchanged():
    """Only a dict with a role and parts (or content) is a message; others keep the field list."""
    from eventstore.debug.describe_events import message_text, value

    assert value({"role": "user", "content": "hi"}) == "user: 'hi'"
    assert value({"a": 1, "parts": []}) == "{a: 1, parts: []}"
    assert message_text({"role": 3, "parts": []}) is None


def test_diff_lists_every_counted_row_or_says_how_many_more(chat, capsys):
    """"graph_nodes: 6 added" lists 5 and says "and 1 more row"; the JSON keeps the counts."""
    code, out, _ = run(capsys, "diff", chat, "--from", "3", "--to", "4")
    assert code == 0
    lines = out.splitlines()
    at = lines.index("  graph_nodes: 6 added")
    shown = [line for line in lines[at + 1:at + 7] if line.startswith("    + ")]
    assert len(shown) == 5
    assert lines[at + 6] == "    ... and 1 more row"


def test_diff_row_keys_name_the_session_and_the_node(chat, capsys):
    """Graph rows are keyed `(chat-1, n2)`, never by the internal numbers `(3, 3)`."""
    code, out, _ = run(capsys, "diff", chat, "--from", "3", "--to", "4")
    assert "    + (chat-1, n2)" in out.splitlines()
    code, out, _ = run(capsys, "diff", chat, "--from", "3", "--to", "4", "--json")
    nodes = next(t for t in json.loads(out)["tables"] if t["table"] == "graph_nodes")
    assert nodes["added"] == 6 and nodes["examples"][0] == "+ (chat-1, n2)"
