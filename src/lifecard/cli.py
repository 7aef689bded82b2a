"""`lifecard …` — the command line. Errors become one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import ipaddress
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="lifecard: one frozen base model, pluggable life cards.",
)

# options shared by `generate` and `chat`
Model = Annotated[
    str | None,
    typer.Option(
        "--model", help="a .gguf file or a Hugging Face model folder [default: SmolLM2-135M-Instruct]"
    ),
]
Dtype = Annotated[str, typer.Option("--dtype", help="auto (bfloat16), float32 or bfloat16")]
Device = Annotated[str, typer.Option("--device", help="cpu or cuda")]
Temperature = Annotated[float, typer.Option("--temperature", "-t", help="0 = greedy")]
TopK = Annotated[int, typer.Option("--top-k", help="keep the k most likely tokens; 0 = off")]
TopP = Annotated[
    float, typer.Option("--top-p", help="nucleus: keep the smallest set with this much probability")
]
MinP = Annotated[float, typer.Option("--min-p", help="drop tokens below min_p × the top probability")]
RepPenalty = Annotated[float, typer.Option("--repetition-penalty", help="> 1 discourages repeating; 1 = off")]
Seed = Annotated[int | None, typer.Option("--seed", help="makes sampling reproducible")]
MaxTokens = Annotated[int, typer.Option("--max-tokens", "-n", help="most tokens to generate")]
Stop = Annotated[list[str] | None, typer.Option("--stop", help="stop at this string (repeatable)")]
Beams = Annotated[int, typer.Option("--num-beams", help="beam search width; > 1 needs --temperature 0")]
LengthPenalty = Annotated[float, typer.Option("--length-penalty", help="beam score = log p / length^this")]
Cards = Annotated[
    list[str] | None,
    typer.Option("--card", help="plug in a life card: FILE or FILE:STRENGTH (repeatable; mixed exactly)"),
]
Strict = Annotated[
    bool, typer.Option("--strict", help="refuse cards made on other weights of the same shape")
]


class _Fail(Exception):
    """An expected problem with the user's input; printed as one line."""


@contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        typer.echo("", err=True)
        raise typer.Exit(130) from None
    except (ValueError, OSError, _Fail) as e:  # ModelFileError, ConfigError, bad params are ValueErrors
        typer.secho(f"error: {e}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None


def _params(**kw):
    from lifecard.engine.sampling import SamplingParams

    kw["stop"] = tuple(kw["stop"] or ())
    try:
        return SamplingParams(**kw)
    except ValueError as e:  # name the flags the user typed (--top-p), not the fields (top_p)
        message = str(e)
        for name in kw:
            message = re.sub(rf"\b{name}\b", "--" + name.replace("_", "-"), message)
        raise _Fail(message) from None


def _prepare(sampling: dict, card_specs, model, dtype, device, strict):
    """Check the flags, then the cards, then load the model and plug the cards in: cheap checks first,
    so a bad flag or card fails before seconds are spent loading."""
    from lifecard.engine.generate import Engine

    params = _params(**sampling)
    cards = _read_cards(card_specs)
    engine = Engine.load(model, dtype=dtype, device=device, strict=strict)
    deck = Deck(engine)
    for card, strength in cards:
        deck.add(card, strength)
    return params, engine, deck


def _read_cards(specs: list[str] | None) -> list[tuple]:
    """--card values, read and validated before the model loads: 'ada.card:0.6' -> (Card, 0.6);
    'ada.card' -> (Card, None), None meaning the card's default strength."""
    from lifecard.cards.card import Card

    cards = []
    for spec in specs or []:
        path, sep, tail = spec.rpartition(":")
        strength = None
        if sep:
            try:
                strength = float(tail)
            except ValueError:
                path = spec
        else:
            path = spec
        cards.append((Card.read(path), strength))
    return cards


class Deck:
    """The cards plugged into one CLI session, mounted as one exact mix; every change re-mounts it,
    and a change that fails leaves the previous mix in place."""

    def __init__(self, engine):
        self.engine = engine
        self.cards: dict[str, tuple] = {}  # id -> (Card, strength), in the order added
        self.slot = 0

    def add(self, card, strength: float | None = None) -> None:
        self._apply({**self.cards, card.id: (card, card.default_strength if strength is None else strength)})

    def remove(self, card_id: str) -> None:
        self._need(card_id)
        self._apply({k: v for k, v in self.cards.items() if k != card_id})

    def set_strength(self, card_id: str, strength: float) -> None:
        self._need(card_id)
        self._apply({**self.cards, card_id: (self.cards[card_id][0], strength)})

    def describe(self) -> str:
        if not self.cards:
            return "no cards: the base model"
        return "\n".join(
            f"{cid}  {card.name}  strength {s:g}  ({card.label})" for cid, (card, s) in self.cards.items()
        )

    def _need(self, card_id: str) -> None:
        if card_id not in self.cards:
            raise _Fail(f"no card {card_id!r} is plugged in (plugged: {', '.join(self.cards) or 'none'})")

    def _apply(self, cards: dict[str, tuple]) -> None:
        mount = self.engine.mount(list(cards.values()))  # validates everything before touching the bank
        for warning in mount.warnings:
            typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)
        if self.slot:
            self.engine.unmount(self.slot)
        self.slot, self.cards = mount.slot, cards


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _run(engine, prompt_ids: list[int], params, on_text: Callable[[str], None], slot: int = 0) -> str:
    """Generate one reply on bank slot `slot`, streaming its text (beam search prints it whole at the end)."""
    from lifecard.engine.generate import Completion, Request

    request = Request(prompt_ids, params, slot)
    if params.num_beams > 1:
        text = engine.beam_search(request).text
        on_text(text)
        return text
    done = [Completion()]
    for _, piece in engine.stream([request], done):
        on_text(piece)
    return done[0].text


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="the text to continue; with --chat, a user message")],
    chat: Annotated[
        bool, typer.Option("--chat/--raw", help="wrap the prompt in the model's chat template")
    ] = True,
    system: Annotated[str | None, typer.Option("--system", help="system message (with --chat)")] = None,
    model: Model = None,
    dtype: Dtype = "auto",
    device: Device = "cpu",
    temperature: Temperature = 0.7,
    top_k: TopK = 0,
    top_p: TopP = 0.9,
    min_p: MinP = 0.0,
    repetition_penalty: RepPenalty = 1.0,
    seed: Seed = None,
    max_tokens: MaxTokens = 256,
    stop: Stop = None,
    num_beams: Beams = 1,
    length_penalty: LengthPenalty = 1.0,
    card: Cards = None,
    strict: Strict = False,
) -> None:
    """Generate text from a prompt, streaming tokens as they come."""
    with _one_line_errors():
        params, engine, deck = _prepare(
            dict(
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                min_p=min_p,
                repetition_penalty=repetition_penalty,
                seed=seed,
                max_tokens=max_tokens,
                stop=stop,
                num_beams=num_beams,
                length_penalty=length_penalty,
            ),
            card,
            model,
            dtype,
            device,
            strict,
        )
        if chat:
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": prompt}
            ]
            ids = engine.chat_prompt(messages)
        else:
            ids = engine.tokenizer.encode(prompt)
        _run(engine, ids, params, _write, deck.slot)
        _write("\n")


@app.command()
def chat(
    system: Annotated[str | None, typer.Option("--system", help="system message")] = None,
    model: Model = None,
    dtype: Dtype = "auto",
    device: Device = "cpu",
    temperature: Temperature = 0.7,
    top_k: TopK = 0,
    top_p: TopP = 0.9,
    min_p: MinP = 0.0,
    repetition_penalty: RepPenalty = 1.0,
    seed: Seed = None,
    max_tokens: MaxTokens = 512,
    stop: Stop = None,
    num_beams: Beams = 1,
    length_penalty: LengthPenalty = 1.0,
    card: Cards = None,
    strict: Strict = False,
) -> None:
    """Chat with the model; it keeps the conversation. Type /help for the commands (cards, /reset, /exit)."""
    with _one_line_errors():
        params, engine, deck = _prepare(
            dict(
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                min_p=min_p,
                repetition_penalty=repetition_penalty,
                seed=seed,
                max_tokens=max_tokens,
                stop=stop,
                num_beams=num_beams,
                length_penalty=length_penalty,
            ),
            card,
            model,
            dtype,
            device,
            strict,
        )
        _note(f"lifecard chat · {engine.source} · {engine.dtype}".replace("torch.", ""))
        _note(f"{deck.describe()} · /help lists the commands")
        start = [{"role": "system", "content": system}] if system else []
        history = list(start)
        while True:
            try:
                line = input("> " if sys.stdin.isatty() else "").strip()
            except EOFError:
                break
            if line in ("/exit", "/quit"):
                break
            if line == "/reset":
                history = list(start)
                _note("(conversation forgotten)")
            elif line.startswith("/"):
                try:
                    _chat_command(line, deck)
                except (ValueError, OSError, _Fail) as e:  # a bad command never ends the chat
                    typer.secho(f"error: {e}", err=True, fg=typer.colors.RED)
            elif line:
                history.append({"role": "user", "content": line})
                try:
                    reply = _run(engine, engine.chat_prompt(history), params, _write, deck.slot)
                except KeyboardInterrupt:  # stop this reply, keep the chat
                    reply = ""
                    _note("\n(interrupted)")
                _write("\n")
                history.append({"role": "assistant", "content": reply})


CHAT_HELP = """/card add FILE [STRENGTH]   plug in a card (from the next reply on)
/card rm ID                 unplug it
/card strength ID X         change how strongly it applies
/cards                      what is plugged in
/reset                      forget the conversation
/exit                       leave (or Ctrl-D)"""


def _chat_command(line: str, deck: Deck) -> None:
    words = line.split()
    match words:
        case ["/help"]:
            _note(CHAT_HELP)
        case ["/cards"]:
            _note(deck.describe())
        case ["/card", "add", path]:
            deck.add(*_read_cards([path])[0])
            _note(deck.describe())
        case ["/card", "add", path, strength]:
            deck.add(_read_cards([path])[0][0], _number(strength))
            _note(deck.describe())
        case ["/card", "rm", card_id]:
            deck.remove(card_id)
            _note(deck.describe())
        case ["/card", "strength", card_id, strength]:
            deck.set_strength(card_id, _number(strength))
            _note(deck.describe())
        case _:
            raise _Fail(f"unknown or incomplete command {line!r}: /help lists the commands")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _Fail(f"strength must be a number, got {text!r}") from None


def _note(text: str) -> None:
    typer.secho(text, err=True, dim=True)


@app.command()
def inspect(
    file: Annotated[str, typer.Argument(help="a .card file")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Show what a card holds: persona, base, modules, provenance, eval figures, digest, signature."""
    with _one_line_errors():
        import json

        from lifecard.cards.inspect import format_inspection, inspect_card

        summary = inspect_card(file)
        typer.echo(
            json.dumps(summary, indent=2, ensure_ascii=False) if as_json else format_inspection(summary)
        )


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="port to listen on")] = 8000,
    model: Model = None,
    dtype: Dtype = "auto",
    device: Device = "cpu",
    store: Annotated[
        str | None, typer.Option("--store", help="card store folder [default: user data dir lifecard/cards]")
    ] = None,
    keys: Annotated[
        str | None,
        typer.Option(
            "--keys", help="API keys file (JSON or `KEY OWNER [admin]` lines); also $LIFECARD_API_KEYS"
        ),
    ] = None,
    card_memory: Annotated[
        int, typer.Option("--card-memory", help="MB of bank memory idle mounted cards may keep")
    ] = 256,
    max_rows: Annotated[int, typer.Option("--max-rows", help="rows of the running batch")] = 16,
    max_queue: Annotated[int, typer.Option("--max-queue", help="requests that may wait; then 429")] = 64,
    context: Annotated[
        int, typer.Option("--context", help="prompt + completion tokens per request (at most the model's)")
    ] = 2048,
    card: Annotated[
        list[str] | None,
        typer.Option("--card", help="put this .card file in the store as a public card (repeatable)"),
    ] = None,
    strict: Strict = False,
) -> None:
    """Serve the OpenAI-compatible API, where every request may bring its own life cards."""
    with _one_line_errors():
        import os

        from lifecard.server.auth import ENV_VAR, Keys

        api_keys = Keys.load(keys, os.environ.get(ENV_VAR))
        if api_keys.is_open and not _is_loopback(host):
            raise _Fail(
                f"no API keys are configured, so the server may only listen on loopback, not {host}: "
                f"pass --keys FILE or set {ENV_VAR}, or use --host 127.0.0.1"
            )
        for name, value in (("--port", port), ("--max-rows", max_rows), ("--context", context)):
            if value < 1:
                raise _Fail(f"{name} must be ≥ 1, got {value}")
        if card_memory < 0 or max_queue < 0:
            raise _Fail("--card-memory and --max-queue must be ≥ 0")
        import uvicorn
        from platformdirs import user_data_dir

        from lifecard.cards.card import Card
        from lifecard.engine.generate import Engine
        from lifecard.server.app import BASE_ALIAS, create_app

        preload = [(Path(path), Card.read(path)) for path in card or []]  # before the model loads
        engine = Engine.load(model, dtype=dtype, device=device, strict=strict)
        engine.mounts.idle_bytes = card_memory * 2**20
        cards = _open_store(engine, Path(store or Path(user_data_dir("lifecard")) / "cards"), strict, preload)
        context = min(context, engine.cfg.max_position_embeddings)
        app_ = create_app(engine, cards, api_keys, max_rows=max_rows, max_queue=max_queue, context=context)
        auth = (
            f"{len(api_keys.owners)} owner(s) with API keys"
            if not api_keys.is_open
            else "no API keys: loopback only, every caller is the owner 'local'"
        )
        _note(f"lifecard serve · {engine.source} · {engine.dtype}".replace("torch.", ""))
        _note(f"model id {engine.base.model_id!r} (or {BASE_ALIAS!r})")
        _note(f"{len(cards.entries)} card(s) in {cards.root}")
        _note(f"{auth} · API http://{host}:{port}/v1")
        typer.secho(f"studio: open http://{host}:{port}/ in a browser", err=True, bold=True)
        uvicorn.run(app_, host=host, port=port, log_level="info", timeout_graceful_shutdown=5)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


SERVER_OWNER = "server"  # who owns the cards `serve --card` puts in the store


def _open_store(engine, root: Path, strict: bool, preload: list[tuple]):
    """The card store, with each preloaded (path, Card) in it as a public card of the owner "server"
    (written only when the store does not hold that very card already)."""
    from lifecard.server.app import BASE_ALIAS
    from lifecard.server.store import Store

    store = Store(root, engine.base, strict=strict, reserved=(BASE_ALIAS, engine.base.model_id))
    for path, card in preload:
        entry = store.get(card.id)
        if entry is not None and entry.owner != SERVER_OWNER:
            raise _Fail(f"--card {path}: the store already holds a card {card.id!r} of {entry.owner}")
        if entry is None or entry.digest != card.manifest["content_sha256"] or not entry.public:
            store.put(path.read_bytes(), SERVER_OWNER, public=True, filename=path.name)
    return store


@app.command()
def models() -> None:
    """List the models lifecard can load, and where they come from."""
    with _one_line_errors():
        from lifecard.model.files import list_models

        for entry in list_models():
            typer.echo("  ".join(f"{k}={v}" for k, v in entry.items()))


def main() -> None:
    from lifecard.cli_forge import eval_command, forge_app

    app.add_typer(forge_app, name="forge")
    app.command("eval")(eval_command)
    app()


if __name__ == "__main__":
    main()
