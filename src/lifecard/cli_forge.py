"""`lifecard forge …` and `lifecard eval`: making cards and measuring them from the command line.

Every forge draws a progress bar, checkpoints into --checkpoint (default: the cache's forge/<id>),
and when interrupted (Ctrl-C) keeps that checkpoint: the same command again resumes from it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

forge_app = typer.Typer(no_args_is_help=True, help="Make a life card: steer, bake, tune, card, import.")

Out = Annotated[Path, typer.Option("--out", "-o", help="where to write the .card file")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="a .gguf file or HF folder [default: SmolLM2]")]
Dtype = Annotated[
    str, typer.Option("--dtype", help="float32 (default: training is exact and fast enough) or bfloat16")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="fixes initialisation, data order and sampling")]
Budget = Annotated[
    str, typer.Option("--budget", help="tiny | quick | standard: how much work each part gets")
]
Checkpoint = Annotated[
    Path | None, typer.Option("--checkpoint", help="checkpoint folder [default: cache/forge/<id>]")
]
Eval = Annotated[bool, typer.Option("--eval/--no-eval", help="measure the card and store the figures in it")]


class Fail(Exception):
    """An expected problem with the user's input; printed as one line."""


@contextmanager
def one_line_errors(checkpoint: Path | None = None) -> Iterator[None]:
    from lifecard.cards.charcard import CharacterCardError
    from lifecard.forge.progress import ForgeCancelled

    try:
        yield
    except (KeyboardInterrupt, ForgeCancelled):
        where = (
            f": checkpoint kept in {checkpoint}, run the same command again to resume" if checkpoint else ""
        )
        typer.secho(f"\ninterrupted{where}", err=True, fg=typer.colors.YELLOW)
        raise typer.Exit(130) from None
    except (ValueError, OSError, Fail, CharacterCardError) as e:
        typer.secho(f"error: {e}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None


@contextmanager
def progress_bar() -> Iterator[Any]:
    """A `Progress` whose stages show as rich progress bars on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bars

    from lifecard.forge.progress import Progress

    bars = Bars(
        TextColumn("{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[figures]}"),
        console=Console(stderr=True),
    )
    tasks: dict[str, Any] = {}

    def listener(stage: str, done: int, total: int, figures: dict[str, Any]) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total, figures="")
        text = "  ".join(f"{k} {v}" for k, v in figures.items())
        bars.update(tasks[stage], completed=done, total=total, figures=text)

    with bars:
        yield Progress(listener)


def load_engine(model: str | None, dtype: str) -> Any:
    from lifecard.engine.generate import Engine

    return Engine.load(model, dtype=dtype)


def checkpoint_for(given: Path | None, card_id: str) -> Path:
    from lifecard.model.files import cache_root

    return given or cache_root() / "forge" / card_id


def finish(engine: Any, card: Any, out: Path, evaluate: bool, started: float) -> None:
    """Optionally measure the card, then write it atomically and say what was made."""
    if evaluate:
        from lifecard.eval.report import EvalPlan, with_eval
        from lifecard.eval.report import evaluate as measure

        typer.secho("measuring the card (lifecard eval)…", err=True, dim=True)
        card = with_eval(card, measure(engine, card, EvalPlan()))
    out.parent.mkdir(parents=True, exist_ok=True)
    card.write(out)
    figures = card.manifest.get("eval", {})
    shown = {k: figures[k] for k in ("drift", "fidelity", "recall", "markers") if k in figures}
    seconds = time.perf_counter() - started
    typer.echo(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) in {seconds:.0f} s  {shown or ''}")


def common_card(
    profile: Any,
    out: Path,
    budget: Any,
    seed: int,
    model: str | None,
    dtype: str,
    checkpoint: Path | None,
    evaluate: bool,
) -> None:
    """Load the model, forge `profile` with `budget` (a preset's name or a Budget), finish."""
    from lifecard.forge.recipe import forge_profile

    started = time.perf_counter()
    ckpt = checkpoint_for(checkpoint, profile.id)
    with one_line_errors(ckpt):
        engine = load_engine(model, dtype)
        with progress_bar() as progress:
            card = forge_profile(
                engine, profile, budget=budget, seed=seed, progress=progress, checkpoint_dir=ckpt
            )
        finish(engine, card, out, evaluate, started)


@forge_app.command("card")
def card_command(
    profile_file: Annotated[Path, typer.Argument(help="a profile (.yaml or .json): see docs/forge.md")],
    out: Out,
    budget: Budget = "standard",
    seed: SeedOpt = 0,
    model: ModelOpt = None,
    dtype: Dtype = "float32",
    checkpoint: Checkpoint = None,
    evaluate: Eval = True,
) -> None:
    """One profile → one card: steer (tone), bake (persona), tune (knowledge, examples)."""
    from lifecard.forge.profile import Profile

    with one_line_errors():
        profile = Profile.load(profile_file)
    common_card(profile, out, budget, seed, model, dtype, checkpoint, evaluate)


@forge_app.command("bake")
def bake_command(
    profile_file: Annotated[
        Path, typer.Argument(help="a profile (.yaml/.json) or a Character Card (.png/.json/.charx)")
    ],
    out: Out,
    budget: Budget = "standard",
    steps: Annotated[int | None, typer.Option("--steps", help="optimiser steps (fewer = half-baked)")] = None,
    seed: SeedOpt = 0,
    model: ModelOpt = None,
    dtype: Dtype = "float32",
    checkpoint: Checkpoint = None,
    evaluate: Eval = True,
) -> None:
    """Persona text into weights: the base with the persona in context teaches a LoRA without it."""
    from dataclasses import replace

    from lifecard.forge.recipe import BUDGETS

    with one_line_errors():
        profile = _profile_or_character_card(profile_file)
        if budget not in BUDGETS:
            raise Fail(f"--budget {budget!r} is not one of {', '.join(BUDGETS)}")
    plan = BUDGETS[budget]
    if steps is not None:
        plan = replace(plan, lora=replace(plan.lora, steps=steps))
    baked_only = replace(profile, like="", knowledge=[], examples=[], documents=[])
    common_card(baked_only, out, plan, seed, model, dtype, checkpoint, evaluate)


@forge_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="a Character Card V2/V3: .png, .json or .charx")],
    out: Out,
    budget: Budget = "standard",
    seed: SeedOpt = 0,
    model: ModelOpt = None,
    dtype: Dtype = "float32",
    checkpoint: Checkpoint = None,
    evaluate: Eval = True,
) -> None:
    """A Character Card V2/V3 becomes a card: its persona fields mapped, then baked."""
    with one_line_errors():
        profile = _profile_or_character_card(file, character_card=True)
    common_card(profile, out, budget, seed, model, dtype, checkpoint, evaluate)


def _profile_or_character_card(path: Path, character_card: bool = False) -> Any:
    from lifecard.cards.charcard import read_character_card
    from lifecard.forge.profile import Profile

    if not path.is_file():
        raise Fail(f"{path} does not exist: give the path of a profile or a character card")
    if not character_card and path.suffix.lower() in (".yaml", ".yml"):
        return Profile.load(path)
    if not character_card and path.suffix.lower() == ".json":
        import json

        raw = json.loads(path.read_text(encoding="utf-8"))
        if not (isinstance(raw, dict) and ("spec" in raw or "data" in raw)):
            return Profile.from_mapping(raw, path.name)
    if path.stat().st_size > 32 << 20:
        raise Fail(f"{path.name} is over 32 MiB: a character card is far smaller")
    card = read_character_card(path.read_bytes(), path.name)
    return Profile.from_persona(card.persona)


@forge_app.command("tune")
def tune_command(
    data: Annotated[
        list[Path], typer.Argument(help="JSONL chats / question-answer pairs / text, or .txt/.md files")
    ],
    out: Out,
    name: Annotated[str, typer.Option("--name", help="the card's name")],
    steps: Annotated[
        int, typer.Option("--steps", help="most optimiser steps (early stopping may end sooner)")
    ] = 120,
    rank: Annotated[int, typer.Option("--rank", help="LoRA rank")] = 8,
    lr: Annotated[float, typer.Option("--lr", help="learning rate")] = 1e-3,
    held_out: Annotated[
        float, typer.Option("--held-out", help="share of examples held out for early stopping")
    ] = 0.1,
    seed: SeedOpt = 0,
    model: ModelOpt = None,
    dtype: Dtype = "float32",
    checkpoint: Checkpoint = None,
) -> None:
    """Knowledge and style from examples: supervised LoRA, loss on assistant tokens only."""
    from lifecard.cards.card import Card
    from lifecard.forge.lora import LoraRecipe
    from lifecard.forge.profile import Profile
    from lifecard.forge.tune import read_data, tune

    started = time.perf_counter()
    with one_line_errors():
        profile = Profile.from_mapping({"name": name}, "--name")
        examples = read_data(data)
        recipe = LoraRecipe(rank=rank, alpha=2.0 * rank, steps=steps, lr=lr, seed=seed)
    ckpt = checkpoint_for(checkpoint, profile.id)
    with one_line_errors(ckpt):
        engine = load_engine(model, dtype)
        with progress_bar() as progress:
            result, record = tune(
                engine.model,
                engine.tokenizer,
                examples,
                recipe,
                held_out_fraction=held_out,
                progress=progress,
                checkpoint_dir=ckpt,
            )
        card = Card.new(
            id=profile.id,
            name=name,
            base=engine.base,
            lora=result.factors,
            lora_alpha=recipe.alpha,
            forge={
                **record,
                "seed": seed,
                "steps": result.steps,
                "seconds": round(time.perf_counter() - started, 1),
            },
        )
        finish(engine, card, out, False, started)


@forge_app.command("steer")
def steer_command(
    out: Out,
    profile_file: Annotated[
        Path | None, typer.Argument(help="a profile whose tone (like, unlike, markers) to use")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="the card's name")] = None,
    like: Annotated[
        str | None, typer.Option("--like", help="the trait, as a system prompt would say it")
    ] = None,
    unlike: Annotated[
        str | None, typer.Option("--unlike", help="its opposite [default: plain and neutral]")
    ] = None,
    pairs: Annotated[
        Path | None, typer.Option("--pairs", help='JSONL of {"prompt", "positive", "negative"}')
    ] = None,
    method: Annotated[str, typer.Option("--method", help="mean (CAA) or pca")] = "mean",
    max_drift: Annotated[
        float, typer.Option("--max-drift", help="perplexity ratio allowed at strength 1")
    ] = 1.08,
    markers: Annotated[
        list[str] | None, typer.Option("--marker", help="a word that shows the trait (for eval)")
    ] = None,
    lang: Annotated[str | None, typer.Option("--lang", help="en or zh: which built-in prompts")] = None,
    seed: SeedOpt = 0,
    model: ModelOpt = None,
    dtype: Dtype = "float32",
    evaluate: Eval = True,
) -> None:
    """Tone and values in seconds: one direction per layer from contrasting prompts, no training.
    The trait comes from a profile's tone, or from the flags (which override the profile)."""
    from dataclasses import replace

    from lifecard.cards.card import Card
    from lifecard.forge.profile import Profile
    from lifecard.forge.steer import SteerRecipe, read_pairs, steer

    started = time.perf_counter()
    with one_line_errors():
        if profile_file is not None:
            profile = Profile.load(profile_file)
        elif name:
            profile = Profile.from_mapping({"name": name}, "--name")
        else:
            raise Fail("give a profile file, or the card's name with --name")
        profile = replace(
            profile,
            name=name or profile.name,
            like=like or profile.like,
            unlike=unlike or profile.unlike,
            markers=list(markers or profile.markers),
            language=lang or profile.language,
        )
        pair_list = read_pairs(pairs) if pairs else None
        if not pair_list and not profile.like:
            raise Fail(
                "give the trait with --like (and optionally --unlike), or contrastive pairs with --pairs"
            )
        if max_drift <= 1.0:
            raise Fail(f"--max-drift {max_drift} must be above 1.0 (1.08 allows 8% more perplexity)")
        if method not in ("mean", "pca"):
            raise Fail(f"--method {method!r} is unknown: use mean or pca")
        engine = load_engine(model, dtype)
        forging = time.perf_counter()
        with progress_bar() as progress:
            vectors, coefficient, record = steer(
                engine.model,
                engine.tokenizer,
                SteerRecipe(method=method, max_drift=max_drift, seed=seed),
                like=profile.like or None,
                unlike=profile.unlike or None,
                pairs=pair_list,
                lang=profile.language,
                progress=progress,
            )
        persona = profile.persona()
        if profile.like and "personality" not in persona:
            persona["personality"] = profile.like
        card = Card.new(
            id=profile.id,
            name=profile.name,
            base=engine.base,
            persona=persona,
            steer=vectors,
            steer_module_scale=coefficient,
            forge={
                **record,
                "seed": seed,
                "steps": 0,
                "seconds": round(time.perf_counter() - forging, 2),
                "checks": profile.checks(),
            },
        )
        finish(engine, card, out, evaluate, started)


def eval_command(
    card_file: Annotated[Path, typer.Argument(help="a .card file")],
    report: Annotated[
        Path | None, typer.Option("--report", help="folder for report.md and plots [default: CARD.eval/]")
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="fewer prompts and strengths (seconds, rougher)")
    ] = False,
    write: Annotated[
        bool, typer.Option("--write/--no-write", help="store the figures in the card's eval field")
    ] = True,
    model: ModelOpt = None,
    dtype: Dtype = "float32",
) -> None:
    """Measure a card: fidelity, recall, style markers, base drift, a strength sweep; plots."""
    from lifecard.cards.card import Card
    from lifecard.eval.report import QUICK, EvalPlan, evaluate, with_eval, write_report

    with one_line_errors():
        card = Card.read(card_file)
        engine = load_engine(model, dtype)
        figures = evaluate(engine, card, QUICK if quick else EvalPlan())
        folder = report or card_file.with_suffix(".eval")
        path = write_report(card, figures, folder)
        if write:
            with_eval(card, figures).write(card_file)
        shown = {k: v for k, v in figures.items() if k not in ("sweep", "corpus")}
        typer.echo(f"{card_file.name}: {shown}\nreport: {path}")
