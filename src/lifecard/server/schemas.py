"""The HTTP edge: request and response bodies, in OpenAI's shapes plus lifecard's extensions.

Requests are validated strictly (no "1" for 1, no true for 1, no NaN; 1.0 is the integer 1, as
JSON Schema counts it): a body that does not fit the schema is a 422. Rules that need the model or
the cards (context length, a card's strength range, n = 1) are checked by the app and answered with
400. Unknown fields are ignored, as OpenAI's own clients send fields a server may not know.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_STRICT = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")
StopText = Annotated[str, Field(min_length=1, max_length=1000)]


def integral(value: Any) -> Any:
    """8.0 is the integer 8, as JSON Schema counts it (8.5 stays a float, and is refused); lists and
    lists of lists of token ids likewise."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [integral(v) for v in value]
    return value


class CardRef(BaseModel):
    """One card of a mix (lifecard extension)."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid")
    id: str = Field(min_length=1, max_length=64, description="a card id")
    strength: float | None = Field(None, description="within the card's own [min, max]; default: its default")


class StreamOptions(BaseModel):
    model_config = _STRICT
    include_usage: bool = False


class GenerationParams(BaseModel):
    """What chat and text completions share: the model or cards, sampling, limits, streaming."""

    model_config = _STRICT
    model: str = Field(min_length=1, max_length=256, description="the base model's id or a card id")
    cards: list[CardRef] | None = Field(
        None, description="extension: a mix of cards with strengths; `model` may then be the base id"
    )
    max_tokens: int | None = Field(None, ge=1, description="default: 256, within the context")
    max_completion_tokens: int | None = Field(None, ge=1, description="the newer name of max_tokens")
    temperature: float | None = Field(None, ge=0, le=2, description="0 (or < 1e-5) = greedy; default 0.7")
    top_p: float | None = Field(None, gt=0, le=1, description="default 0.9")
    top_k: int | None = Field(None, ge=0, description="extension; 0 = off")
    min_p: float | None = Field(None, ge=0, le=1, description="extension; 0 = off")
    repetition_penalty: float | None = Field(None, ge=0.01, le=10, description="extension; 1 = off")
    presence_penalty: float | None = Field(None, ge=-2, le=2, description="only 0 is supported")
    frequency_penalty: float | None = Field(None, ge=-2, le=2, description="only 0 is supported")
    seed: int | None = Field(None, ge=0, lt=2**64)
    stop: StopText | list[StopText] | None = Field(
        None, max_length=16, description="up to 16 non-empty strings that end the text"
    )
    n: int | None = Field(None, ge=1, description="only 1 is supported")
    stream: bool = False
    stream_options: StreamOptions | None = None
    ignore_eos: bool = Field(False, description="extension: keep going past end-of-sequence")
    logprobs: Any = Field(None, description="not supported")
    user: str | None = None

    _integral = field_validator("max_tokens", "max_completion_tokens", "top_k", "seed", "n", mode="before")(
        integral
    )


class TextPart(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatRequest(GenerationParams):
    messages: list[Message] = Field(min_length=1)
    tools: Any = Field(None, description="not supported")


class CompletionRequest(GenerationParams):
    prompt: str | list[int] | list[str] | list[list[int]] = Field(
        description="one prompt: text or token ids (a list holding one of them is accepted too)"
    )
    echo: bool = Field(False, description="only false is supported")
    suffix: str | None = Field(None, description="not supported")
    best_of: int | None = Field(None, ge=1, description="only 1 is supported")

    _integral_prompt = field_validator("prompt", "best_of", mode="before")(integral)


class CardPatch(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    public: bool


# --- responses ---------------------------------------------------------------------------------


def now() -> int:
    return int(time.time())


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatMessage
    finish_reason: str
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=now)
    model: str
    system_fingerprint: str
    choices: list[ChatChoice]
    usage: Usage


class ChatChunkChoice(BaseModel):
    index: int = 0
    delta: dict[str, str]  # {"role": "assistant", "content": ""} first, then {"content": …}, {} last
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = Field(default_factory=now)
    model: str
    system_fingerprint: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class TextChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: str | None
    logprobs: None = None


class TextCompletion(BaseModel):
    """A text completion, or one chunk of a streamed one (the same shape, as OpenAI sends it)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=now)
    model: str
    system_fingerprint: str
    choices: list[TextChoice]
    usage: Usage | None = None


class ModelInfo(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    parent: str | None = None  # a card's base model, as vLLM lists its adapters


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelInfo]


class CardSummary(BaseModel):
    id: str
    name: str
    owner: str
    public: bool
    size: int
    digest: str
    created: str
    uploaded: float
    version: str
    description: str
    modules: list[dict[str, Any]]
    strength: dict[str, float]
    warnings: list[str] = []


class CardList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CardSummary]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    model: str
    source: str
    dtype: str
    context: int
    max_rows: int
    cards: int
    auth: Literal["keys", "open"]
