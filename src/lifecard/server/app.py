"""The HTTP server: OpenAI-compatible completions where every request brings its own life cards,
and a private card store.

    POST /v1/chat/completions   POST /v1/completions      streaming (SSE) or not
    GET  /v1/models             the base and every card the caller may use
    GET/POST /v1/cards          list, upload (raw body or multipart)
    GET/PATCH/DELETE /v1/cards/{id}, GET /v1/cards/{id}/file
    GET  /health                GET /metrics (Prometheus text)

Every request runs as one job of the continuous-batching `Scheduler`, on its own exact card mix.
The scheduler calls back on its worker thread; `Bridge` hands what it says to the event loop.
Problems with the input are `ApiError`s raised at this edge and answered in OpenAI's error shape:
422 when the body does not fit the schema (malformed JSON, a wrong type, a value outside the
schema's range), 400 when it fits but cannot be served (the context, a card's strength range, n > 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from jinja2 import TemplateError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from lifecard.cards.card import Card
from lifecard.cards.validate import CardError
from lifecard.engine.generate import Completion, Engine
from lifecard.engine.generate import Request as EngineRequest
from lifecard.engine.sampling import SamplingParams
from lifecard.engine.scheduler import Job, QueueFull, Scheduler
from lifecard.server import schemas as s
from lifecard.server.auth import Caller, Keys
from lifecard.server.metrics import CONTENT_TYPE, CountRequests, RequestCounts, TokenRate, render
from lifecard.server.store import Entry, Store, StoreConflict

log = logging.getLogger("lifecard.server")

BASE_ALIAS = "base"
UPLOAD_PATHS = ("/v1/cards", "/v1/cards/import")  # bodies that may be as large as a card file


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20  # a completion request
    max_upload_bytes: int = 32 << 20  # a card upload
    max_cards: int = 8  # cards in one request's mix
    default_max_tokens: int = 256  # when a request names none (and the context has room)


class ApiError(Exception):
    """An answer other than 200, in OpenAI's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), self.status, headers=self.headers)


def not_found(what: str, name: str, param: str | None, code: str) -> ApiError:
    """The one answer for a missing card and for someone else's private card."""
    return ApiError(
        404, f"The {what} `{name}` does not exist or you do not have access to it.", param=param, code=code
    )


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


class Bridge:
    """Carries a job's callbacks from the scheduler's worker thread into the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.queue: asyncio.Queue[tuple[str, Any, Any]] = asyncio.Queue()

    def on_text(self, text: str) -> None:
        self._put(("text", text, None))

    def on_done(self, out: Completion | None, error: BaseException | None) -> None:
        self._put(("done", out, error))

    def _put(self, item: tuple[str, Any, Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


class Server:
    """What the routes share: the engine, its scheduler, the store, the keys, the limits."""

    def __init__(self, engine: Engine, store: Store, keys: Keys, scheduler: Scheduler, limits: Limits):
        self.engine, self.store, self.keys, self.limits = engine, store, keys, limits
        self.scheduler = scheduler
        self.base_id = engine.base.model_id
        self.fingerprint = "fp_" + engine.base.fingerprint[:12]
        self.started = int(time.time())
        self.ready = False
        self.rate = TokenRate()
        self.requests = RequestCounts()

    # --- cards ---------------------------------------------------------------------------------

    def is_base(self, model: str) -> bool:
        return model in (self.base_id, BASE_ALIAS)

    def visible(self, card_id: str, caller: Caller) -> Entry | None:
        entry = self.store.get(card_id)
        return entry if entry is not None and caller.can_see(entry.owner, entry.public) else None

    async def mix(self, body: s.GenerationParams, caller: Caller) -> list[tuple[Card, float]]:
        """The request's cards and strengths, each visible to the caller and within its range."""
        refs: dict[str, tuple[Entry, float | None, str]] = {}  # id -> (entry, strength, param)
        if not self.is_base(body.model):
            entry = self.visible(body.model, caller)
            if entry is None:
                raise not_found("model", body.model, "model", "model_not_found")
            refs[entry.id] = (entry, None, "model")
        for i, ref in enumerate(body.cards or []):
            entry = self.visible(ref.id, caller)
            if entry is None:
                raise not_found("card", ref.id, f"cards[{i}].id", "card_not_found")
            if entry.id in refs and refs[entry.id][2] != "model":
                raise ApiError(
                    400, f"card {ref.id!r} is listed twice in `cards`: give it once", param=f"cards[{i}].id"
                )
            refs[entry.id] = (entry, ref.strength, f"cards[{i}].strength")
        if len(refs) > self.limits.max_cards:
            raise ApiError(
                400,
                f"a request may mix at most {self.limits.max_cards} cards, this one has "
                f"{len(refs)}: mix fewer",
                param="cards",
            )
        mix = []
        for entry, strength, param in refs.values():
            try:
                card = await asyncio.to_thread(self.store.load, entry)
            except (CardError, OSError) as e:
                raise ApiError(400, f"card {entry.id!r} cannot be used here: {e}", param=param) from e
            lo, hi = card.strength_range
            value = card.default_strength if strength is None else strength
            if not lo <= value <= hi:
                raise ApiError(
                    400,
                    f"card {entry.id!r} takes a strength in [{lo:g}, {hi:g}] (its "
                    f"manifest's strength.min/max), not {value:g}",
                    param=param,
                )
            mix.append((card, value))
        return mix

    # --- prompts and sampling ------------------------------------------------------------------------

    def chat_ids(self, messages: list[s.Message]) -> list[int]:
        chat = [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in messages
        ]
        try:
            return self.engine.tokenizer.encode_chat(chat)
        except (TemplateError, ValueError) as e:  # ModelFileError: no template; the template refusing
            raise ApiError(
                400, f"the messages cannot be put in this model's chat template: {e}", param="messages"
            ) from e

    def completion_ids(self, prompt: str | list[int] | list[str] | list[list[int]]) -> list[int]:
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], str | list):
            if len(prompt) != 1:
                raise ApiError(
                    400, f"one prompt per request, got {len(prompt)}: send them one by one", param="prompt"
                )
            prompt = prompt[0]
        if isinstance(prompt, str):
            return self.engine.tokenizer.encode(prompt)
        vocab = self.engine.cfg.vocab_size
        bad = next((t for t in prompt if not (isinstance(t, int) and 0 <= t < vocab)), None)
        if bad is not None:
            raise ApiError(
                400, f"token id {bad} is outside this model's vocabulary [0, {vocab})", param="prompt"
            )
        return list(prompt)  # type: ignore[arg-type]

    def sampling(self, body: s.GenerationParams, prompt_tokens: int, prompt_param: str) -> SamplingParams:
        unsupported = [
            ("n", body.n not in (None, 1), "only n = 1 is supported: send n requests"),
            ("logprobs", bool(body.logprobs), "logprobs are not supported"),
            ("presence_penalty", bool(body.presence_penalty), "use repetition_penalty (an extension)"),
            ("frequency_penalty", bool(body.frequency_penalty), "use repetition_penalty (an extension)"),
        ]
        for param, is_set, why in unsupported:
            if is_set:
                raise ApiError(400, f"{param} is not supported here: {why}", param=param)
        context = self.scheduler.max_len
        if prompt_tokens == 0:
            raise ApiError(400, "the prompt is empty: give at least one token", param=prompt_param)
        if prompt_tokens >= context:
            message = f"the prompt has {prompt_tokens} tokens, this server's context is {context}: shorten it"
            raise ApiError(400, message, param=prompt_param, code="context_length_exceeded")
        room = context - prompt_tokens
        asked = body.max_completion_tokens or body.max_tokens
        if asked is not None and asked > room:
            message = (
                f"max_tokens {asked} and the prompt's {prompt_tokens} tokens exceed this server's context of "
                f"{context} tokens: ask for at most {room}"
            )
            raise ApiError(400, message, param="max_tokens", code="context_length_exceeded")
        given = {
            "temperature": body.temperature,  # below 1e-5 the engine treats it as greedy
            "top_p": body.top_p,
            "top_k": body.top_k,
            "min_p": body.min_p,
            "repetition_penalty": body.repetition_penalty,
            "seed": body.seed,
        }
        stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        try:
            return SamplingParams(
                **{k: v for k, v in given.items() if v is not None},  # type: ignore[arg-type]
                max_tokens=asked or min(self.limits.default_max_tokens, room),
                stop=tuple(stop),
                ignore_eos=body.ignore_eos,
            )
        except ValueError as e:
            raise ApiError(400, str(e)) from e

    # --- running a job ---------------------------------------------------------------------------

    def finished(self, out: Completion | None, error: BaseException | None) -> Completion:
        """A job's completion, or the ApiError its failure means."""
        if error is None and out is not None:
            return out
        if not self.ready:  # the scheduler stopped under it
            raise ApiError(
                503, str(error), type="server_error", code="shutting_down", headers={"Retry-After": "5"}
            )
        if isinstance(error, ValueError):  # a card or prompt the engine refused at admission
            raise ApiError(400, str(error))
        log.error("generation failed", exc_info=error)
        raise ApiError(500, f"generation failed: {error}", type="server_error")

    def submit(
        self, ids: list[int], params: SamplingParams, mix: list[tuple[Card, float]], stream: bool
    ) -> tuple[Job, Bridge]:
        """Queue the job (429 when the queue is full); its text comes through the bridge if `stream`."""
        bridge = Bridge(asyncio.get_running_loop())
        job = Job(EngineRequest(ids, params), mix, on_done=bridge.on_done)
        if stream:
            job.on_text = bridge.on_text
        try:
            self.scheduler.submit(job)
        except QueueFull as e:
            raise ApiError(
                429,
                f"the server is busy ({e})",
                type="rate_limit_error",
                code="queue_full",
                headers={"Retry-After": "1"},
            ) from e
        return job, bridge

    async def wait(self, request: Request, job: Job, bridge: Bridge) -> Completion:
        """The job's completion; cancels the job if the client goes away first."""

        async def gone() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        watcher = asyncio.ensure_future(gone())
        getter = asyncio.ensure_future(bridge.queue.get())  # only ("done", …) comes: no on_text
        try:
            await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                raise ClientGone()
            _, out, error = getter.result()
            return self.finished(out, error)
        finally:
            getter.cancel()
            watcher.cancel()
            self.scheduler.cancel(job)  # a no-op once it has finished

    async def events(
        self,
        job: Job,
        bridge: Bridge,
        chunk: Callable[[str | None, str | None], dict],
        usage: Callable[[Completion], dict | None],
        head: dict | None = None,
    ) -> AsyncIterator[str]:
        """The SSE stream of one job: `head` first (if any), then `chunk(text, finish_reason)` per
        piece of text and at the end, then `usage(out)` (if any) and [DONE]. The client going away
        cancels this generator, and its `finally` cancels the job at once."""
        try:
            if head is not None:
                yield sse(head)
            while True:
                kind, value, error = await bridge.queue.get()
                if kind == "text":
                    yield sse(chunk(value, None))
                    continue
                try:
                    out = self.finished(value, error)
                except ApiError as e:
                    yield sse(e.body())  # the status line went out already: the error is an event
                    break
                yield sse(chunk(None, out.finish_reason))
                extra = usage(out)
                if extra is not None:
                    yield sse(extra)
                break
            yield "data: [DONE]\n\n"
        finally:
            self.scheduler.cancel(job)


def sse(data: Any) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


def usage(prompt_tokens: int, out: Completion) -> s.Usage:
    n = len(out.tokens)
    return s.Usage(prompt_tokens=prompt_tokens, completion_tokens=n, total_tokens=prompt_tokens + n)


def caller_of(request: Request) -> Caller:
    caller = getattr(request.state, "caller", None)
    if caller is None:  # the gate lets no /v1 request through without one
        raise ApiError(401, "no API key", type="invalid_request_error", code="invalid_api_key")
    return caller


# --- the gate: keys and body size, before the body is read ----------------------------------------


class Gate:
    """ASGI middleware for /v1: 503 before the server is ready, 401 without a valid key, 413 for a
    body over the limit (by Content-Length, and by counting a body sent without it). The body is
    read here once and handed on, so no route ever reads more than the limit."""

    def __init__(self, app: Any, server: Server):
        self.app, self.server = app, server

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        server = self.server
        if not server.ready:
            error = ApiError(
                503,
                "the server is starting or shutting down: retry in a moment",
                type="server_error",
                code="not_ready",
                headers={"Retry-After": "5"},
            )
            await error.response()(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        caller = server.keys.caller(headers.get("authorization"))
        if caller is None:
            message = "a valid API key is needed: send `Authorization: Bearer KEY`"
            await ApiError(401, message, code="invalid_api_key").response()(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        is_upload = scope["path"] in UPLOAD_PATHS
        limit = server.limits.max_upload_bytes if is_upload else server.limits.max_body_bytes
        too_large = ApiError(
            413,
            f"the request body is over the limit of {limit} bytes" + (" for a card" if is_upload else ""),
            code="body_too_large",
        )
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            await too_large.response()(scope, receive, send)
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                await too_large.response()(scope, receive, send)
                return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # then only http.disconnect is left to come

        await self.app(scope, replay, send)


# --- the app --------------------------------------------------------------------------------------

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": s.ErrorBody, "description": what}
    for code, what in [
        (400, "a value this server cannot serve"),
        (401, "missing or unknown API key"),
        (404, "no such model or card (or not yours)"),
        (413, "body too large"),
        (422, "the body does not fit the schema"),
        (429, "queue full; retry after Retry-After seconds"),
        (503, "starting or shutting down"),
    ]
}
NOT_OWNER = {"model": s.ErrorBody, "description": "a public card of someone else"}
CONFLICT = {"model": s.ErrorBody, "description": "the id is another owner's card"}
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


def create_app(
    engine: Engine,
    store: Store,
    keys: Keys,
    *,
    max_rows: int = 16,
    max_queue: int = 64,
    context: int | None = None,
    limits: Limits | None = None,
) -> FastAPI:
    """The server app for `engine` (which it owns from now on: only its scheduler's worker thread
    runs it). `context` caps prompt + completion tokens (default and maximum: the model's)."""
    scheduler = Scheduler(engine, max_rows=max_rows, max_queue=max_queue, max_len=context)
    server = Server(engine, store, keys, scheduler, limits or Limits())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler.start()
        server.ready = True

        async def sample_rate() -> None:
            while True:
                server.rate.sample(scheduler.stats.tokens)
                await asyncio.sleep(1.0)

        sampler = asyncio.ensure_future(sample_rate())
        try:
            yield
        finally:
            server.ready = False
            sampler.cancel()
            await asyncio.to_thread(scheduler.stop)

    app = FastAPI(title="lifecard", version="1", lifespan=lifespan, responses=ERRORS)
    app.state.server = server
    app.add_middleware(Gate, server=server)
    app.add_middleware(CountRequests, counts=server.requests)
    _handlers(app)
    _generation_routes(app, server)
    _card_routes(app, server)
    _info_routes(app, server)
    from lifecard.server import studio  # the page at / and its routes (it imports this module)

    studio.register(app, server)
    return app


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> Response:
        return e.response()

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> Response:
        errors: list[dict[str, Any]] = list(e.errors())
        first: dict[str, Any] = errors[0] if errors else {"loc": ("body",), "msg": "invalid", "type": ""}
        param = _param(first.get("loc", ()))
        if first.get("type") == "json_invalid":
            ctx: dict[str, Any] = first.get("ctx") or {}
            message = f"the body is not valid JSON: {ctx.get('error', first['msg'])}"
            param = None
        elif param is None:
            message = "the request body must be a JSON object, sent with `Content-Type: application/json`"
        else:
            message = f"{param}: {first['msg']}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        return ApiError(422, message, param=param, code=str(first.get("type") or "") or None).response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> Response:
        if e.status_code == 400 and isinstance(e.__cause__, ValueError):  # FastAPI could not decode the body
            return ApiError(422, f"the body is not valid JSON: {e.__cause__}", code="json_invalid").response()
        return ApiError(e.status_code, str(e.detail), headers=dict(e.headers or {})).response()

    @app.exception_handler(ClientGone)
    async def client_gone(request: Request, e: ClientGone) -> Response:
        return Response(status_code=499)  # nobody reads it; nginx's "client closed request"

    @app.exception_handler(Exception)
    async def crashed(request: Request, e: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return ApiError(500, "internal error: the server log has the details", type="server_error").response()


_TYPE_TAG = re.compile(r"[\[\]-]|^(str|int|float|bool|list|dict|none)$")


def _param(loc: Any) -> str | None:
    """('body', 'cards', 0, 'strength') -> 'cards[0].strength'; pydantic's union tags are dropped."""
    out = ""
    for part in list(loc)[1:]:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _TYPE_TAG.search(str(part)):
            out += f".{part}" if out else str(part)
    return out or None


def _generation_routes(app: FastAPI, server: Server) -> None:
    @app.post("/v1/chat/completions", response_model=s.ChatCompletion)
    async def chat_completions(body: s.ChatRequest, request: Request) -> Any:
        caller = caller_of(request)
        if body.tools:
            raise ApiError(400, "tools are not supported here", param="tools")
        mix = await server.mix(body, caller)
        ids = await asyncio.to_thread(server.chat_ids, body.messages)
        params = server.sampling(body, len(ids), "messages")
        job, bridge = server.submit(ids, params, mix, body.stream)
        reply_id, fp = f"chatcmpl-{uuid.uuid4().hex}", server.fingerprint

        def chunk(text: str | None, finish: str | None) -> dict:
            delta = {} if finish else {"content": text or ""}
            choice = s.ChatChunkChoice(delta=delta, finish_reason=finish)
            return s.ChatCompletionChunk(
                id=reply_id, model=body.model, system_fingerprint=fp, choices=[choice]
            ).model_dump()

        def final_usage(out: Completion) -> dict | None:
            if not (body.stream_options and body.stream_options.include_usage):
                return None
            return s.ChatCompletionChunk(
                id=reply_id, model=body.model, system_fingerprint=fp, choices=[], usage=usage(len(ids), out)
            ).model_dump()

        if body.stream:
            first = s.ChatChunkChoice(delta={"role": "assistant", "content": ""})
            head = s.ChatCompletionChunk(
                id=reply_id, model=body.model, system_fingerprint=fp, choices=[first]
            )
            return _stream(server.events(job, bridge, chunk, final_usage, head.model_dump()))
        out = await server.wait(request, job, bridge)
        message = s.ChatMessage(content=out.text)
        return s.ChatCompletion(
            id=reply_id,
            model=body.model,
            system_fingerprint=fp,
            usage=usage(len(ids), out),
            choices=[s.ChatChoice(message=message, finish_reason=out.finish_reason)],
        )

    @app.post("/v1/completions", response_model=s.TextCompletion)
    async def completions(body: s.CompletionRequest, request: Request) -> Any:
        caller = caller_of(request)
        for param, is_set in [
            ("echo", body.echo),
            ("suffix", body.suffix),
            ("best_of", (body.best_of or 1) > 1),
        ]:
            if is_set:
                raise ApiError(400, f"{param} is not supported here", param=param)
        mix = await server.mix(body, caller)
        ids = await asyncio.to_thread(server.completion_ids, body.prompt)
        params = server.sampling(body, len(ids), "prompt")
        job, bridge = server.submit(ids, params, mix, body.stream)
        reply_id, fp = f"cmpl-{uuid.uuid4().hex}", server.fingerprint

        def chunk(text: str | None, finish: str | None) -> dict:
            choice = s.TextChoice(text=text or "", finish_reason=finish)
            return s.TextCompletion(
                id=reply_id, model=body.model, system_fingerprint=fp, choices=[choice]
            ).model_dump()

        def final_usage(out: Completion) -> dict | None:
            if not (body.stream_options and body.stream_options.include_usage):
                return None
            return s.TextCompletion(
                id=reply_id, model=body.model, system_fingerprint=fp, choices=[], usage=usage(len(ids), out)
            ).model_dump()

        if body.stream:
            return _stream(server.events(job, bridge, chunk, final_usage))
        out = await server.wait(request, job, bridge)
        return s.TextCompletion(
            id=reply_id,
            model=body.model,
            system_fingerprint=fp,
            usage=usage(len(ids), out),
            choices=[s.TextChoice(text=out.text, finish_reason=out.finish_reason)],
        )


def _stream(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _card_routes(app: FastAPI, server: Server) -> None:
    def own(card_id: str, caller: Caller) -> Entry:
        """The caller's card (or any card, for an admin); someone else's card is 403 if they can see it."""
        entry = server.visible(card_id, caller)
        if entry is None:
            raise not_found("card", card_id, "id", "card_not_found")
        if not caller.can_manage(entry.owner):
            raise ApiError(
                403,
                f"card {card_id!r} belongs to {entry.owner}: only its owner or an admin may change it",
                code="not_owner",
            )
        return entry

    def summary(entry: Entry, warnings: list[str] | None = None) -> s.CardSummary:
        return s.CardSummary(**entry.summary(), warnings=warnings or [])

    @app.get("/v1/cards", response_model=s.CardList)
    async def list_cards(request: Request) -> Any:
        caller = caller_of(request)
        # plain dicts straight to JSON: no model per card, so a thousand list in a few milliseconds
        data = [
            e.summary() | {"warnings": []} for e in server.store.all() if caller.can_see(e.owner, e.public)
        ]
        return JSONResponse({"object": "list", "data": data})

    @app.post(
        "/v1/cards",
        response_model=s.CardSummary,
        status_code=201,
        openapi_extra=UPLOAD_BODY,
        responses={200: {"model": s.CardSummary, "description": "replaced"}, 409: CONFLICT},
    )
    async def upload_card(request: Request, public: bool | None = None) -> Any:
        """Upload a `.card` file (the raw body, or the `file` part of a multipart form). It is
        validated in full before it is stored; the same id by the same owner replaces the card."""
        caller = caller_of(request)
        blob, filename = await _upload(request)
        entry, is_new, warnings = await store_upload(server, blob, caller.owner, public, filename)
        return JSONResponse(summary(entry, warnings).model_dump(), 201 if is_new else 200)

    @app.get("/v1/cards/{card_id}", response_model=s.CardSummary)
    async def get_card(card_id: str, request: Request) -> Any:
        entry = server.visible(card_id, caller_of(request))
        if entry is None:
            raise not_found("card", card_id, "id", "card_not_found")
        return summary(entry)

    @app.get("/v1/cards/{card_id}/file", response_class=Response)
    async def download_card(card_id: str, request: Request) -> Any:
        entry = server.visible(card_id, caller_of(request))
        if entry is None:
            raise not_found("card", card_id, "id", "card_not_found")
        try:
            blob = await asyncio.to_thread(server.store.path(card_id).read_bytes)
        except FileNotFoundError as e:  # deleted in the meantime
            raise not_found("card", card_id, "id", "card_not_found") from e
        headers = {"Content-Disposition": f'attachment; filename="{card_id}.card"'}
        return Response(blob, media_type="application/octet-stream", headers=headers)

    @app.patch("/v1/cards/{card_id}", response_model=s.CardSummary, responses={403: NOT_OWNER})
    async def patch_card(card_id: str, patch: s.CardPatch, request: Request) -> Any:
        own(card_id, caller_of(request))
        return summary(await asyncio.to_thread(server.store.set_public, card_id, patch.public))

    @app.delete("/v1/cards/{card_id}", responses={403: NOT_OWNER})
    async def delete_card(card_id: str, request: Request) -> dict[str, Any]:
        """Requests already running on the card finish on it; the next ones get 404."""
        own(card_id, caller_of(request))
        await asyncio.to_thread(server.store.delete, card_id)
        return {"id": card_id, "object": "card", "deleted": True}


async def store_upload(
    server: Server, blob: bytes, owner: str, public: bool | None, filename: str
) -> tuple[Entry, bool, list[str]]:
    """Validate and store an uploaded `.card` (off the event loop): (entry, is it new, warnings);
    a bad card is a 400, an id held by another owner a 409."""
    try:
        return await asyncio.to_thread(server.store.put, blob, owner, public=public, filename=filename)
    except CardError as e:
        raise ApiError(400, str(e), param="file", code="invalid_card") from e
    except StoreConflict as e:
        raise ApiError(409, str(e), param="id", code="card_exists") from e


async def _upload(request: Request) -> tuple[bytes, str]:
    """(file bytes, file name) of an upload: a multipart form's file part, or the raw body."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        try:
            form = await request.form()
        except Exception as e:  # python-multipart's parse errors have no common base
            raise ApiError(400, f"the multipart body cannot be read ({e}): send the card as `file`") from e
        files = [v for v in form.values() if isinstance(v, UploadFile)]
        if not files:
            raise ApiError(400, "the multipart form has no file part: send the card as `file`", param="file")
        return await files[0].read(), files[0].filename or "upload.card"
    blob = await request.body()
    if not blob:
        raise ApiError(400, "the body is empty: send a .card file as the body", param="file")
    return blob, "upload.card"


def _info_routes(app: FastAPI, server: Server) -> None:
    @app.get("/v1/models", response_model=s.ModelList)
    async def models(request: Request) -> Any:
        caller = caller_of(request)
        base = s.ModelInfo(id=server.base_id, created=server.started, owned_by="lifecard")
        cards = [
            s.ModelInfo(id=e.id, created=int(e.uploaded), owned_by=e.owner, parent=server.base_id)
            for e in server.store.all()
            if caller.can_see(e.owner, e.public)
        ]
        return s.ModelList(data=[base, *cards])

    @app.get("/health", response_model=s.Health, responses={503: {"model": s.ErrorBody}})
    async def health() -> Any:
        if not server.ready:
            raise ApiError(
                503, "not ready", type="server_error", code="not_ready", headers={"Retry-After": "5"}
            )
        engine = server.engine
        return s.Health(
            model=server.base_id,
            source=engine.source,
            dtype=str(engine.dtype).removeprefix("torch."),
            context=server.scheduler.max_len,
            max_rows=server.scheduler.max_rows,
            cards=len(server.store.entries),
            auth="open" if server.keys.is_open else "keys",
        )

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        text = render(
            server.scheduler,
            server.engine.mounts,
            server.engine.bank,
            len(server.store.entries),
            server.rate,
            server.requests,
        )
        return Response(text, media_type=CONTENT_TYPE)
