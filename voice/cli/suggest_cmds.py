"""``voice evaluate | compare | suggest`` (``voice train`` is in ``train_cmd``), and the options and
helpers the suggestion model's commands share.

The engine (``suggest``) does the work; these commands read files and the database, print, and
turn typed errors into one-line messages with hints.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

T = TypeVar("T")
CACHE_ENV = "NEXTLINE_CACHE"


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def conversations_option(flag: str = "--data") -> Decorator:
    """The conversation JSONL a command reads (``data_file``)."""
    return click.option(flag, "data_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                        required=True,
                        help="Conversation JSONL: one conversation per line, as `voice data import` "
                        "writes it (format: docs/suggestion-model.md).")


def models_root_option() -> Decorator:
    """The model registry root (``models_root``)."""
    return click.option("--models", "models_root", type=click.Path(file_okay=False, path_type=Path),
                        default=Path("models"), show_default=True, help="Registry root.")


model_option = click.option("--model", "model_ref", required=True, help="Model directory or <tenant>/<version>.")


def default_cache() -> Path:
    """``$NEXTLINE_CACHE`` or ``~/.cache/nextline``: exported encoders, embeddings, entities."""
    from suggest.encoder.export import default_cache_root

    return default_cache_root()


def guarded(action: Callable[[], T]) -> T:
    """Run ``action``; engine errors become a clean CLI error carrying their hint."""
    from suggest.errors import SuggestError
    from voice.errors import VoiceError

    try:
        return action()
    except (SuggestError, VoiceError) as error:
        raise click.ClickException(str(error)) from error


def load_conversations(path: Path) -> list:
    """Conversations of a JSONL file; bad lines are reported (line numbers) and skipped."""
    from suggest.data.format import read_conversations

    report = guarded(lambda: read_conversations(path))
    for issue in report.issues[:20]:
        click.echo(f"skipped {path.name} {issue}", err=True)
    if report.issues:
        click.echo(f"{len(report.issues)} bad lines skipped in {path}", err=True)
    for note in report.notes:
        click.echo(f"note: {path.name}: {note}", err=True)
    return report.conversations


@click.command("evaluate")
@model_option
@conversations_option()
@click.option(
    "--split",
    type=click.Choice(["test", "train", "all"]),
    default="test",
    show_default=True,
    help="Side of the fixed split to score.",
)
@models_root_option()
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the metrics and per-turn records as JSON.",
)
def evaluate_command(
    model_ref: str, data_file: Path, split: str, models_root: Path, out_file: Path | None
) -> None:
    """Next-action accuracy (policy vs behaviour cloning vs majority), outcome AUC, relevance."""
    report = _evaluate(model_ref, data_file, split, models_root)
    print_metrics({report.model_version: report.summary()})
    if out_file:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(
            json.dumps(
                {
                    "model": report.model_version,
                    "metrics": report.summary(),
                    "turns": report.turn_dicts(),
                },
                indent=1,
            )
        )


def _evaluate(model_ref: str, data_file: Path, split: str, models_root: Path) -> Any:
    from suggest.data.split import select
    from suggest.evaluate import evaluate_model
    from suggest.model import load_model
    from suggest.registry import ModelRegistry
    from suggest.train.encoders import yardstick_for

    directory = guarded(lambda: ModelRegistry(models_root).resolve(model_ref))
    model = guarded(lambda: load_model(directory))
    trained_on = model.manifest.get("training", {}).get("split")
    if split == "test" and trained_on == "all":
        click.echo(
            f"warning: {directory} was trained on all data, including the held-out split", err=True
        )
    tenant = model.manifest.get("tenant")
    side = select(load_conversations(data_file), split)  # type: ignore[arg-type]  # click.Choice
    conversations = [c for c in side if c.tenant == tenant] or side  # other tenant: score them all
    if not conversations:  # scoring nothing would report p = 1, "no difference"
        raise click.ClickException(
            f"no conversations to evaluate in {data_file} (split {split!r}); give a file with "
            "valid conversations (see the skipped lines above), or --split all"
        )
    started = time.perf_counter()
    yardstick = yardstick_for(model.manifest.get("parameters", {}), default_cache())
    report = guarded(
        lambda: evaluate_model(
            model,
            conversations,
            embed_texts=None,
            encoder_dir=directory / "encoder",
            yardstick=yardstick,
        )
    )
    click.echo(
        f"evaluated {len(conversations)} conversations in {time.perf_counter() - started:.1f} s",
        err=True,
    )
    if not report.turns:
        raise click.ClickException(
            f"the {len(conversations)} conversations in {data_file} (split {split!r}) have no "
            "agent turn to score; give conversations in which the agent speaks"
        )
    return report


@click.command("compare")
@click.option(
    "--model", "model_refs", multiple=True, required=True, help="Give twice: --model A --model B."
)
@conversations_option()
@click.option(
    "--split",
    type=click.Choice(["test", "train", "all"]),
    default="test",
    show_default=True,
    help="Side of the fixed split to score.",
)
@models_root_option()
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write metrics and per-turn differences as JSON.",
)
def compare_command(
    model_refs: tuple[str, ...],
    data_file: Path,
    split: str,
    models_root: Path,
    out_file: Path | None,
) -> None:
    """Two models side by side, per-turn differences, and which is better (significance test)."""
    from dataclasses import asdict

    from suggest.compare import compare_reports

    if len(model_refs) != 2:
        raise click.UsageError("give exactly two models: --model A --model B")
    a, b = (_evaluate(ref, data_file, split, models_root) for ref in model_refs)
    comparison = guarded(lambda: compare_reports(a, b))
    print_metrics(
        {f"A {a.model_version}": comparison.metrics_a, f"B {b.model_version}": comparison.metrics_b}
    )
    low, high = comparison.relevance_diff_ci95
    click.echo(
        f"relevance B-A {comparison.relevance_diff:+.4f} (95 % CI {low:+.4f} .. {high:+.4f}, "
        f"Wilcoxon p {comparison.relevance_p:.3g}); "
        f"top-3 McNemar p {comparison.top3_p:.3g}"
    )
    click.echo(comparison.verdict)
    if out_file:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(json.dumps({**asdict(comparison)}, indent=1))


@click.command("suggest")
@model_option
@conversations_option("--dialogues")
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="JSONL: one line per agent turn.",
)
@click.option(
    "--k", default=3, show_default=True, type=click.IntRange(1, 20), help="Suggestions per turn."
)
@models_root_option()
def suggest_command(
    model_ref: str, data_file: Path, out_file: Path, k: int, models_root: Path
) -> None:
    """QA replay: at every agent turn, the top-k suggestions beside what the agent said.

    Similarities are cosines in the full MiniLM's space, also for a model with a cheaper
    encoder, so replays of different models compare.
    """
    from suggest.engine import SuggestionEngine
    from suggest.registry import ModelRegistry
    from suggest.replay import replay_conversation
    from suggest.train.encoders import yardstick_for

    conversations = load_conversations(data_file)
    if not conversations:  # an empty replay file read as "mean top-1 similarity 0.000", exit 0
        raise click.ClickException(
            f"no conversations in {data_file} to replay (check it with `voice data check`)"
        )
    engine = guarded(lambda: SuggestionEngine.load(ModelRegistry(models_root).resolve(model_ref)))
    yardstick = yardstick_for(engine.model.manifest.get("parameters", {}), default_cache())
    rows = similarity = 0.0
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with out_file.open("w", encoding="utf-8") as out:
        for conversation in conversations:
            for row in replay_conversation(engine, conversation, k, score_with=yardstick):
                out.write(json.dumps(row.to_dict(), ensure_ascii=False) + "\n")
                rows += 1
                similarity += row.similarities[0] if row.similarities else 0.0
    click.echo(
        f"{int(rows)} agent turns of {len(conversations)} conversations -> {out_file}; "
        f"mean top-1 similarity {similarity / max(rows, 1):.3f}"
    )


def print_metrics(columns: dict[str, dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("metric", *columns.keys())
    keys = list(dict.fromkeys(k for metrics in columns.values() for k in metrics))
    for key in keys:
        table.add_row(key, *(_fmt(metrics.get(key)) for metrics in columns.values()))
    Console().print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return "" if value is None else str(value)


def register(cli: click.Group) -> None:
    """Attach the evaluate, compare and suggest commands."""
    for command in (evaluate_command, compare_command, suggest_command):
        cli.add_command(command)
