"""A LangGraph agent whose every step is checkpointed in an eventstore log.

    python docs/examples/langgraph_agent.py agent.db --thread t1 --turns 4

A `StateGraph` with a deterministic chat model (no network: it answers "what is A + B?"
by calling the `add` tool, then states the sum) and a tool node. Each run continues the
thread from the store: turns already answered are skipped, and a turn that a crash cut
short is finished first. Set ADD_TOOL_DELAY (seconds) to slow the tool down, so the
process can be killed mid-turn to see the resume (tests/integrations do exactly that).

Afterwards, inspect the thread:

    eventstore log agent.db            # one line per checkpoint and write
    eventstore show agent.db t1        # the thread's checkpoints
    eventstore verify agent.db
"""

from __future__ import annotations

import argparse
import os
import re
import time
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

import eventstore
from eventstore.integrations.langgraph import EventStoreSaver

QUESTION = re.compile(r"what is (-?\d+) \+ (-?\d+)\?")


class ArithmeticChatModel(BaseChatModel):
    """A fake chat model: asks the `add` tool, then reports its result. Deterministic."""

    @property
    def _llm_type(self) -> str:
        return "arithmetic-fake"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            reply = AIMessage(content=f"the sum is {last.content}")
        else:
            m = QUESTION.search(str(last.content))
            if m is None:
                reply = AIMessage(content="ask me: what is A + B?")
            else:
                a, b = int(m.group(1)), int(m.group(2))
                reply = AIMessage(content="", tool_calls=[
                    {"name": "add", "args": {"a": a, "b": b}, "id": f"call-{len(messages)}"}])
        return ChatResult(generations=[ChatGeneration(message=reply)])


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    delay = float(os.environ.get("ADD_TOOL_DELAY", "0"))
    if delay:
        print(f"tool add({a}, {b}) running", flush=True)
        time.sleep(delay)
    return a + b


def build_graph(saver: EventStoreSaver) -> Any:
    """The agent: model -> (tools -> model)* -> end, checkpointed by `saver`."""
    model = ArithmeticChatModel()

    def call_model(state: MessagesState) -> dict:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", call_model)
    builder.add_node("tools", ToolNode([add]))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", tools_condition)
    builder.add_edge("tools", "model")
    return builder.compile(checkpointer=saver)


def run(path: str, thread: str, turns: int) -> list[str]:
    """Run the thread up to `turns` answered questions; return every answer so far."""
    with eventstore.open(path) as store:
        graph = build_graph(EventStoreSaver(store))
        config = {"configurable": {"thread_id": thread}}
        state = graph.get_state(config)
        if state.next:  # a crash cut the last turn short: finish it from its checkpoint
            print(f"resuming at {', '.join(state.next)}", flush=True)
            graph.invoke(None, config)
        asked = sum(isinstance(m, HumanMessage) for m in graph.get_state(config).values.get("messages", []))
        for i in range(asked, turns):
            graph.invoke({"messages": [HumanMessage(f"what is {i} + {i * 10}?")]}, config)
            print(f"turn {i} done", flush=True)
        messages = graph.get_state(config).values["messages"]
        return [m.content for m in messages if isinstance(m, AIMessage) and m.content]


def main() -> None:
    """Command line: DB --thread T --turns N."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db")
    parser.add_argument("--thread", default="t1")
    parser.add_argument("--turns", type=int, default=3)
    args = parser.parse_args()
    for answer in run(args.db, args.thread, args.turns):
        print(answer)


if __name__ == "__main__":
    main()
