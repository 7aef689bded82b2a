"""`lifecard eval CARD`: measure a card, write the figures into its `eval` field, and a report.

What is measured depends on what the card says it does (its `forge.checks`, written by the forge
from the profile): held-out questions → recall; tone markers → marker rate; a persona → fidelity.
Every card gets base drift and a strength sweep (effect and drift against strength), plotted.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from lifecard.cards.card import Card
from lifecard.cards.persona import persona_prompt
from lifecard.engine.generate import Engine
from lifecard.eval import measures
from lifecard.eval.corpus import general_corpus
from lifecard.forge import data


@dataclasses.dataclass(frozen=True)
class EvalPlan:
    prompts: int = 24  # held-out prompts for fidelity and markers
    answer_tokens: int = 32
    corpus_rows: int = 16  # × 128 tokens of the general corpus
    strengths: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0)


QUICK = EvalPlan(prompts=6, answer_tokens=16, corpus_rows=4, strengths=(0.0, 1.0))


def corpus_rows(engine: Engine, count: int, width: int = 128) -> list[list[int]]:
    text, _ = general_corpus()
    ids = engine.tokenizer.encode(text[: count * width * 8])
    return [ids[i : i + width] for i in range(0, len(ids) - width + 1, width)][:count]


def evaluate(engine: Engine, card: Card, plan: EvalPlan = EvalPlan()) -> dict[str, Any]:
    """The card's figures at its default strength, and the sweep over `plan.strengths`."""
    checks = card.manifest.get("forge", {}).get("checks", {})
    lang = checks.get("language", "en")
    default = float(card.manifest["strength"]["default"])
    strengths = sorted({0.0, *plan.strengths, default} | ({-1.0} if card.steer is not None else set()))
    questions = checks.get("questions", [])
    markers = checks.get("markers", [])
    prompts = data.eval_prompts(lang)[: plan.prompts]
    system = persona_prompt(card.manifest["persona"])
    rows = corpus_rows(engine, plan.corpus_rows)
    _, corpus_note = general_corpus()
    with_persona = len(card.manifest["persona"]) > 1  # more than a name
    with measures.mounted(engine, card, strengths) as slots:
        base_ppl = measures.perplexity(engine, rows, 0)
        sweep: list[dict[str, Any]] = [
            {"strength": s, "drift": round(measures.perplexity(engine, rows, slot) / base_ppl, 4)}
            for s, slot in zip(strengths, slots, strict=True)
        ]
        if questions:
            answers = measures.replies(engine, slots, [q["q"] for q in questions], plan.answer_tokens * 2)
            for point, got in zip(sweep, answers, strict=True):
                point["recall"] = round(measures.recall(got, [q["expect"] for q in questions]), 4)
        if markers:
            answers = measures.replies(engine, slots, prompts, plan.answer_tokens * 2)
            for point, got in zip(sweep, answers, strict=True):
                point["markers"] = round(measures.marker_rate(got, markers), 4)
        if with_persona:
            kls = measures.teacher_kl(engine, system, prompts, slots, plan.answer_tokens)
            kl_base = kls[slots.index(0)]
            for point, kl in zip(sweep, kls, strict=True):
                point["fidelity"] = round(1 - kl / kl_base, 4) if kl_base > 0 else None
                point["kl"] = round(kl, 4)

    at_default = next(p for p in sweep if p["strength"] == default)
    at_base = next(p for p in sweep if p["strength"] == 0)
    figures: dict[str, Any] = {
        "strength": default,
        "drift": at_default["drift"],
        "corpus": corpus_note,
        "corpus_tokens": sum(map(len, rows)),
        "held_out_prompts": len(prompts),
    }
    for key in ("fidelity", "recall", "markers"):
        if key in at_default:
            figures[key] = at_default[key]
            if key != "fidelity":
                figures[f"{key}_base"] = at_base[key]
    figures["sweep"] = sweep
    return figures


def effect_key(figures: dict[str, Any]) -> str | None:
    """The figure that best says what this card does: markers, else recall, else fidelity."""
    return next((k for k in ("markers", "recall", "fidelity") if k in figures), None)


def plot_sweep(figures: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = figures["sweep"]
    xs = [p["strength"] for p in sweep]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    key = effect_key(figures)
    if key:
        ax.plot(xs, [p.get(key) for p in sweep], "o-", color="tab:blue", label=key)
        ax.set_ylabel(key, color="tab:blue")
    ax.set_xlabel("strength")
    drift_ax = ax.twinx()
    drift_ax.plot(xs, [p["drift"] for p in sweep], "s--", color="tab:red", label="drift (ppl ratio)")
    drift_ax.axhline(1.10, color="tab:red", linewidth=0.6, linestyle=":")
    drift_ax.set_ylabel("drift (perplexity ratio)", color="tab:red")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def with_eval(card: Card, figures: dict[str, Any]) -> Card:
    """The same card with `figures` as its `eval` field (the digest is recomputed on write)."""
    manifest = {**card.manifest, "eval": figures}
    return Card(manifest, card.tensors, card.path, digest_ok=True)


def write_report(card: Card, figures: dict[str, Any], folder: Path) -> Path:
    """report.md + sweep.png + figures.json in `folder`; returns the report's path."""
    folder.mkdir(parents=True, exist_ok=True)
    name = card.manifest["name"]
    plot_sweep(figures, folder / "sweep.png", f"{name}: effect and drift against strength")
    (folder / "figures.json").write_text(json.dumps(figures, indent=1, ensure_ascii=False) + "\n")
    lines = [f"# Eval: {name} ({card.manifest['id']})", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in figures.items() if k != "sweep"]
    keys = [
        k for k in ("drift", "fidelity", "kl", "recall", "markers") if any(k in p for p in figures["sweep"])
    ]
    lines += [
        "",
        "## Strength sweep",
        "",
        "| strength | " + " | ".join(keys) + " |",
        "|---" * (len(keys) + 1) + "|",
    ]
    lines += [
        "| " + " | ".join(str(p.get(k, "")) for k in ["strength", *keys]) + " |" for p in figures["sweep"]
    ]
    lines += ["", "![sweep](sweep.png)", ""]
    report = folder / "report.md"
    report.write_text("\n".join(lines))
    return report
