"""An OpenAI Agents SDK agent whose conversation lives in an eventstore log.

    python docs/examples/openai_agents_session.py agents.db

The model is a fake (no network): it echoes the last user message and counts the turns
it can see, which shows that the session hands the whole history back on each turn. Run
it twice: the second run continues the same conversation from the store. Then:

    eventstore log agents.db              # one line per add_items / pop_item / clear
    eventstore show agents.db demo-user   # the session's items
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, AsyncIterator

from agents import Agent, Runner, set_tracing_disabled
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import ResponseOutputMessage, ResponseOutputText

import eventstore
from eventstore.integrations.openai_agents import EventStoreSession


class EchoModel(Model):
    """A deterministic model: replies with the turn number and the last user message."""

    async def get_response(
        self,
        system_instructions: str | None,
        input: Any,
        model_settings: Any,
        tools: Any,
        output_schema: Any,
        handoffs: Any,
        tracing: Any,
        **kwargs: Any,
    ) -> ModelResponse:
        items = [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
        users = [i for i in items if isinstance(i, dict) and i.get("role") == "user"]
        text = f"turn {len(users)}: you said {users[-1]['content']!r}" if users else "hello"
        message = ResponseOutputMessage(
            id=f"msg-{len(items)}",
            type="message",
            role="assistant",
            status="completed",
            content=[ResponseOutputText(text=text, type="output_text", annotations=[])],
        )
        return ModelResponse(output=[message], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("this example does not stream")


async def chat(path: str, session_id: str, lines: list[str]) -> list[str]:
    """Send each line as one turn of the session; return the agent's replies."""
    set_tracing_disabled(True)  # no network: nothing is exported
    agent = Agent(name="echo", instructions="Repeat after the user.", model=EchoModel())
    replies = []
    with eventstore.open(path) as store:
        session = EventStoreSession(session_id, store)
        for line in lines:
            result = await Runner.run(agent, line, session=session)
            replies.append(str(result.final_output))
    return replies


def main() -> None:
    """Command line: DB [MESSAGE ...]."""
    path = sys.argv[1] if len(sys.argv) > 1 else "agents.db"
    lines = sys.argv[2:] or ["hello", "how are you?"]
    for reply in asyncio.run(chat(path, "demo-user", lines)):
        print(reply)


if __name__ == "__main__":
    main()
