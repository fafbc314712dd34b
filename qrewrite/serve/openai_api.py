"""The OpenAI-compatible chat completions API: ``POST /v1/chat/completions`` and ``GET /v1/models``.

A client written for vLLM or ``transformers serve`` (the ``openai`` Python client, say) works unchanged: the one
user message is the question, the assistant's answer its rewrite, from the same batched path as ``/v1/rewrite``.
The server decodes as it was started (greedy unless ``--num-beams`` / ``--copy-bonus`` / ``--order-bonus``), so a
request may not ask for sampling: ``temperature`` 0 (or left out), ``top_p`` 1, ``n`` 1, no streaming; anything
else is a 400 that says so. ``max_tokens`` cuts the rewrite to that many tokens, with ``finish_reason: "length"``.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations.

import time
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from qrewrite.data.records import question_problem
from qrewrite.infer.generate import prompt_ids


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: StrictStr


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: StrictStr | list[TextPart]
    name: StrictStr | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatCompletionRequest(BaseModel):
    """The fields of OpenAI's chat completions request that a deterministic rewriter can honour."""
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"model": "smollm2-full-typo-soup",
         "messages": [{"role": "user", "content": "What year no sorry which city hosted the 1996 games?"}],
         "temperature": 0, "max_tokens": 64}]})
    model: StrictStr
    messages: Annotated[list[Message], Field(min_length=1)]
    # strict: `max_tokens: true` is not 1, nor `stream: "yes"` true; a number is finite (NaN is not "above 2")
    max_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    temperature: Annotated[StrictFloat, Field(ge=0, le=2, allow_inf_nan=False)] | None = None
    top_p: Annotated[StrictFloat, Field(gt=0, le=1, allow_inf_nan=False)] | None = None
    n: Annotated[StrictInt, Field(ge=1)] | None = None
    stream: StrictBool | None = None
    seed: StrictInt | None = None
    user: StrictStr | None = None


class ChatMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int
    message: ChatMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "qrewrite"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class UnsupportedRequest(ValueError):
    """A well-formed request that asks for what this server does not do (a 400 naming the field)."""

    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(message)
        self.field, self.status = field, status


def question_of(body: ChatCompletionRequest, served: str, max_question_chars: int) -> str:
    """The question a request asks, or :class:`UnsupportedRequest` naming the field that cannot be honoured."""
    if body.model != served:
        raise UnsupportedRequest("model", f"the model {body.model!r} is not served here; this server serves "
                                          f"{served!r} (GET /v1/models)", status=404)
    if body.stream:
        raise UnsupportedRequest("stream", "streaming is not supported: send stream: false (a rewrite is short)")
    if body.n not in (None, 1):
        raise UnsupportedRequest("n", f"n must be 1: the rewriter decodes deterministically, got {body.n}")
    if body.temperature not in (None, 0):
        raise UnsupportedRequest("temperature", "this server decodes deterministically (greedy or beams, as it "
                                                f"was started): send temperature 0, got {body.temperature}")
    if body.top_p not in (None, 1):
        raise UnsupportedRequest("top_p", f"top_p must be 1 (no sampling), got {body.top_p}")
    if len(body.messages) != 1 or body.messages[0].role != "user":
        roles = ", ".join(m.role for m in body.messages)
        raise UnsupportedRequest("messages", "send exactly one message, with role 'user': the question to rewrite "
                                             f"(the model's own prompt does the rest); got roles: {roles}")
    question = body.messages[0].text().strip()
    if not question:
        raise UnsupportedRequest("messages.0.content", "the question is empty or whitespace only")
    if (problem := question_problem(question, None)) is not None:
        raise UnsupportedRequest("messages.0.content", problem[1])
    if len(question) > max_question_chars:
        raise UnsupportedRequest("messages.0.content", f"the question is longer than the limit of "
                                                       f"{max_question_chars} characters")
    return question


def completion(body: ChatCompletionRequest, question: str, rewrite: str, served: str, tokenizer=None,
               prompt=None) -> ChatCompletion:
    """The response for ``rewrite``, cut to ``max_tokens`` tokens where that is fewer, with token usage (the whole
    prompt as the model saw it, and the rewrite; zero for the baselines, which have no tokenizer)."""
    limit = body.max_completion_tokens or body.max_tokens
    finish = "stop"
    prompt_tokens = completion_tokens = 0
    if tokenizer is not None:
        ids = tokenizer(rewrite, add_special_tokens=False)["input_ids"]
        if limit is not None and len(ids) > limit:
            ids, finish = ids[:limit], "length"
            rewrite = tokenizer.decode(ids, skip_special_tokens=True).strip()
        prompt_tokens = len(prompt_ids(tokenizer, [question], prompt)[0])
        completion_tokens = len(ids)
    elif limit is not None and len(rewrite.split()) > limit:  # no tokenizer: words stand in for tokens
        rewrite, finish = " ".join(rewrite.split()[:limit]), "length"
    return ChatCompletion(id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=served,
                          choices=[Choice(index=0, message=ChatMessage(content=rewrite), finish_reason=finish)],
                          usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                                      total_tokens=prompt_tokens + completion_tokens))
