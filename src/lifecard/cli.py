"""`lifecard …` — the command line. Errors become one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    return SamplingParams(**kw)


def _load(model, dtype, device):
    from lifecard.engine.generate import Engine

    return Engine.load(model, dtype=dtype, device=device)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _run(engine, prompt_ids: list[int], params, on_text: Callable[[str], None]) -> str:
    """Generate one reply, streaming its text (beam search prints it whole at the end)."""
    from lifecard.engine.generate import Completion, Request

    request = Request(prompt_ids, params)
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
) -> None:
    """Generate text from a prompt, streaming tokens as they come."""
    with _one_line_errors():
        params = _params(
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
        )
        engine = _load(model, dtype, device)
        if chat:
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": prompt}
            ]
            ids = engine.chat_prompt(messages)
        else:
            ids = engine.tokenizer.encode(prompt)
        _run(engine, ids, params, _write)
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
) -> None:
    """Chat with the model; it keeps the conversation. /reset forgets it, /exit (or Ctrl-D) leaves."""
    with _one_line_errors():
        params = _params(
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
        )
        engine = _load(model, dtype, device)
        typer.secho(
            f"lifecard chat · {engine.source} · {engine.dtype}".replace("torch.", ""), err=True, dim=True
        )
        typer.secho("type a message; /reset forgets the conversation, /exit leaves", err=True, dim=True)
        start = [{"role": "system", "content": system}] if system else []
        history = list(start)
        while True:
            try:
                line = input("> " if sys.stdin.isatty() else "")
            except EOFError:
                break
            line = line.strip()
            if not line:
                continue
            if line in ("/exit", "/quit"):
                break
            if line == "/reset":
                history = list(start)
                typer.secho("(conversation forgotten)", err=True, dim=True)
                continue
            if line.startswith("/"):
                typer.secho(
                    f"unknown command {line.split()[0]!r}: use /reset or /exit",
                    err=True,
                    fg=typer.colors.YELLOW,
                )
                continue
            history.append({"role": "user", "content": line})
            try:
                reply = _run(engine, engine.chat_prompt(history), params, _write)
            except KeyboardInterrupt:  # stop this reply, keep the chat
                reply = ""
                typer.secho("\n(interrupted)", err=True, dim=True)
            _write("\n")
            history.append({"role": "assistant", "content": reply})


@app.command()
def models() -> None:
    """List the models lifecard can load, and where they come from."""
    with _one_line_errors():
        from lifecard.model.files import list_models

        for entry in list_models():
            typer.echo("  ".join(f"{k}={v}" for k, v in entry.items()))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
