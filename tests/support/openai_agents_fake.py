"""A scripted, offline model for the OpenAI Agents SDK, and the agents the tests run with it.

``FakeModel`` answers each call with the next scripted output (messages and tool calls), inside a
generation span carrying a model name and usage as the SDK's own chat-completions model does; an
``Exception`` in the script is raised as a failed model call. Every text it can put in a span —
instructions, input, output, tool arguments and results, error messages — holds a ``CANARY``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx2
from agents import (
    Agent,
    GuardrailFunctionOutput,
    RunContextWrapper,
    function_tool,
    input_guardrail,
)
from agents.items import ModelResponse, TResponseInputItem, TResponseStreamEvent
from agents.models.interface import Model
from agents.tracing import SpanError, generation_span
from agents.usage import InputTokensDetails, OutputTokensDetails, Usage
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

CANARY = "qz7Canary"
MODEL = "gpt-fake-1"

Script = list[list[Any] | Exception]


def say(text: str = f"{CANARY}Reply") -> ResponseOutputMessage:
    """A final assistant message."""
    return ResponseOutputMessage(
        id="msg_1",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


def call(
    name: str, call_id: str, arguments: str = f'{{"q": "{CANARY}ToolArgs"}}'
) -> ResponseFunctionToolCall:
    """A function-tool call (or a handoff: ``transfer_to_<agent>``)."""
    return ResponseFunctionToolCall(
        type="function_call", name=name, arguments=arguments, call_id=call_id, id=f"fc_{call_id}"
    )


class FakeModel(Model):
    """Answers from ``script``; 100 input tokens (20 cached), 10 output tokens (3 reasoning) per call."""

    def __init__(self, script: Script, model: str = MODEL) -> None:
        self.script = list(script)
        self.model = model

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        *args: Any,
        **kwargs: Any,
    ) -> ModelResponse:
        step = self.script.pop(0)
        usage = {"input_tokens": 100, "output_tokens": 10, "output_tokens_details": {"reasoning_tokens": 3}}
        with generation_span(
            model=self.model, input=[{"role": "user", "content": f"{CANARY}Input"}], usage=usage
        ) as span:
            if isinstance(step, Exception):  # as the SDK's models do: a fixed message, then raise
                span.set_error(SpanError(message="Error getting response", data={"error": str(step)}))
                raise step
            span.span_data.output = [{"role": "assistant", "content": f"{CANARY}Output"}]
        return ModelResponse(
            output=step,
            usage=Usage(
                requests=1,
                input_tokens=100,
                output_tokens=10,
                total_tokens=110,
                input_tokens_details=InputTokensDetails(cached_tokens=20, cache_write_tokens=0),
                output_tokens_details=OutputTokensDetails(reasoning_tokens=3),
            ),
            response_id=None,
        )

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[TResponseStreamEvent]:
        raise NotImplementedError("the tests run agents without streaming")


@function_tool
def lookup(q: str) -> str:
    """Look something up."""
    return f"{CANARY}ToolResult {q}"


@function_tool
def explode(q: str) -> str:
    """A tool that fails."""
    raise ValueError(f"{CANARY}ToolError {q}")


@input_guardrail
async def refuse(ctx: RunContextWrapper[Any], agent: Agent[Any], data: Any) -> GuardrailFunctionOutput:
    """Trips on every input."""
    return GuardrailFunctionOutput(output_info={"why": f"{CANARY}Guardrail"}, tripwire_triggered=True)


def triage(
    script: Script, billing: Sequence[list[Any] | Exception] = (), model: str = MODEL, **kwargs: Any
) -> Agent[Any]:
    """The ``triage`` agent (tools ``lookup`` and ``explode``, a handoff to ``billing``) on ``model``."""
    helper = Agent(
        name="billing", instructions=f"{CANARY}Instructions", model=FakeModel(list(billing), model)
    )
    return Agent(
        name="triage",
        instructions=f"{CANARY}Instructions",
        model=FakeModel(script, model),
        tools=[lookup, explode],
        handoffs=[helper],
        **kwargs,
    )


def chat_completions_model(rounds: Sequence[Sequence[str]]) -> Model:
    """The SDK's real Chat Completions model on the real ``openai`` client, against a fake API.

    Each round answers one request: the tool names to call (all at once), or ``[]`` for a final
    reply. Usage per answer: 100 prompt tokens (20 cached), 10 completion tokens.
    """
    from agents import OpenAIChatCompletionsModel
    from openai import AsyncOpenAI

    answers = list(rounds)

    def handler(request: httpx2.Request) -> httpx2.Response:
        tools = answers.pop(0)
        message: dict[str, Any] = {"role": "assistant", "content": f"{CANARY}Reply"}
        if tools:
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{i}",
                        "type": "function",
                        "function": {"name": name, "arguments": f'{{"q": "{CANARY}ToolArgs"}}'},
                    }
                    for i, name in enumerate(tools)
                ],
            }
        return httpx2.Response(
            200,
            json={
                "id": f"chatcmpl-{len(answers)}",
                "object": "chat.completion",
                "created": 1795312088,
                "model": f"{MODEL}-2026-01-01",
                "choices": [
                    {"index": 0, "message": message, "finish_reason": "tool_calls" if tools else "stop"}
                ],
                "usage": {
                    "prompt_tokens": 100,
                    "completion_tokens": 10,
                    "total_tokens": 110,
                    "prompt_tokens_details": {"cached_tokens": 20},
                },
            },
        )

    client = AsyncOpenAI(
        api_key="t",
        base_url="http://api.test/v1",
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
        max_retries=0,
    )
    return OpenAIChatCompletionsModel(model=MODEL, openai_client=client)
