"""``voice train | evaluate | compare | suggest``: the suggestion model's command line.

The engine (``suggest``) does the work; these commands read files and the database, print, and
turn typed errors into one-line messages with hints.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from voice.cli.server_options import existing_database

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
    return report.conversations


@click.command("train")
@conversations_option()
@click.option(
    "--tenant",
    required=True,
    help="Tenant whose conversations are used; the model is registered under it.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Model directory (default: MODELS/<tenant>/<UTC time>).",
)
@models_root_option()
@click.option(
    "--split",
    type=click.Choice(["train", "all"]),
    default="train",
    show_default=True,
    help="train: leave the fixed held-out split out (and score it); all: production model.",
)
@click.option(
    "--feedback",
    "use_feedback",
    is_flag=True,
    help="Use agent feedback stored in the database (--db).",
)
@click.option(
    "--db",
    "db_url",
    help="Database URL for --feedback (default: the one `voice serve` uses, $NEXTLINE_DB_URL or data/nextline.db).",
)
@click.option(
    "--feedback-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Feedback JSONL instead of the database.",
)
@click.option(
    "--reward",
    type=click.Choice(["success", "value"]),
    default="success",
    show_default=True,
    help="Return used for advantage weighting.",
)
@click.option(
    "--beta",
    type=click.FloatRange(min=0.0, min_open=True),
    default=None,
    help="Temperature of the advantage weights, exp(advantage / beta); smaller is sharper "
    "(default: 1, chosen by cross-validation on PersuasionForGood; --tune chooses per tenant).",
)
@click.option(
    "--advantage-lambda",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="0: one-step (TD) advantage; 1: Monte-Carlo (the conversation's outcome); between: "
    "lambda-return (default: 0).",
)
@click.option(
    "--tune",
    is_flag=True,
    help="Choose the return, C, beta and lambda for this tenant by cross-validation on its "
    "training conversations (24 settings x 3 folds, scored by next-action top-3 of successful "
    "conversations; the held-out split is not read); behaviour cloning gets its own C. Takes "
    "about a minute on 600 conversations. Not with --reward, --beta or --advantage-lambda.",
)
@click.option(
    "--actions",
    "action_k",
    type=click.IntRange(min=2),
    default=None,
    help="Number of actions K: how many groups the agents' utterances are sorted into (each "
    "group is one move the model can suggest, e.g. 'asks for the order number'). More groups "
    "are finer moves, each seen less often. Default: chosen from the data, the smallest K of "
    "8, 12, 16, 24, 32, 48, 64 that covers 80 % of agent turns.",
)
@click.option(
    "--intents",
    "intent_k",
    type=click.IntRange(min=2),
    default=None,
    help="Number of customer intents K (groups of customer utterances, e.g. 'price "
    "objection'); default chosen from the data as for --actions.",
)
@click.option(
    "--encoder",
    type=click.Choice(["minilm", "static"]),
    default=None,
    help="Turn encoder, trained and served together: minilm (ONNX all-MiniLM-L6-v2) or static "
    "(a token table distilled from it, ~100x cheaper per turn).  [default: minilm]",
)
@click.option(
    "--quantization",
    type=click.Choice(["int8", "none"]),
    default="int8",
    show_default=True,
    help="MiniLM only: int8 per channel or fp32.",
)
@click.option(
    "--encoder-layers",
    type=click.IntRange(1, 6),
    default=6,
    show_default=True,
    help="MiniLM only: keep its first N layers (3: about half the CPU per suggestion at the "
    "same top-1 relevance; K is chosen in the full MiniLM's space).",
)
@click.option(
    "--no-entities",
    is_flag=True,
    help="Skip entity extraction (no delexicalisation, no entity state bits).",
)
@click.option(
    "--no-context",
    is_flag=True,
    help="Leave the conversations' call-start facts (the optional 'context' field) out of the "
    "state (an ablation; by default every context name in the data becomes a feature).",
)
@click.option("--no-eval", is_flag=True, help="Do not score the held-out split after training.")
@click.option(
    "--allow-noncommercial",
    is_flag=True,
    help="Accept CC BY-NC data (internal evaluation only; never ship the model).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Training cache (default ${CACHE_ENV} or ~/.cache/nextline).",
)
def train_command(
    data_file: Path,
    tenant: str,
    out_dir: Path | None,
    models_root: Path,
    split: str,
    use_feedback: bool,
    db_url: str | None,
    feedback_file: Path | None,
    reward: str,
    beta: float | None,
    advantage_lambda: float | None,
    tune: bool,
    action_k: int | None,
    intent_k: int | None,
    encoder: str | None,
    quantization: str,
    encoder_layers: int,
    no_entities: bool,
    no_context: bool,
    no_eval: bool,
    allow_noncommercial: bool,
    cache_dir: Path | None,
) -> None:
    """Train a tenant's suggestion model from conversations with outcomes.

    \b
    Example:
      voice data import persuasionforgood ../shared/data/dialogues/persuasionforgood \\
          --out data/pfg.jsonl
      voice train --data data/pfg.jsonl --tenant persuasionforgood
      voice train --data data/pfg.jsonl --tenant persuasionforgood --actions 32
      voice train --data data/acme.jsonl --tenant acme --tune
    """
    from suggest.registry import ModelRegistry, check_name
    from suggest.train.pipeline import train

    if tune and _given("reward", "beta", "advantage_lambda"):
        raise click.UsageError("--tune chooses --reward, --beta and --advantage-lambda itself")
    conversations = load_conversations(data_file)
    feedback = _feedback(use_feedback, db_url, feedback_file, tenant)
    if not conversations:
        raise click.ClickException(
            f"no conversations in {data_file} to train on (check it with `voice data check`)"
        )
    config = _train_config(
        tenant=tenant,
        split=split,
        reward=reward,
        beta=beta,
        advantage_lambda=advantage_lambda,
        action_k=action_k,
        intent_k=intent_k,
        encoder=encoder,
        quantization=quantization,
        encoder_layers=encoder_layers,
        entities=not no_entities,
        context=not no_context,
        evaluate=not no_eval,
        allow_noncommercial=allow_noncommercial,
        tune=tune,
    )
    target = out_dir or guarded(
        lambda: ModelRegistry(models_root).new_version(check_name(tenant, "tenant"))
    )
    result = _train_reserved(
        lambda: train(
            conversations,
            config,
            target,
            cache_dir=cache_dir or default_cache(),
            feedback=feedback,
            hook=lambda step: click.echo(f"  {step} ...", err=True),
        ),
        target,
        reserved=out_dir is None,
    )
    _print_training(result)


def _train_config(
    *,
    tenant: str,
    split: str,
    reward: str,
    beta: float | None,
    advantage_lambda: float | None,
    action_k: int | None,
    intent_k: int | None,
    encoder: str | None,
    quantization: str,
    encoder_layers: int,
    entities: bool,
    context: bool,
    evaluate: bool,
    allow_noncommercial: bool,
    tune: bool,
) -> Any:
    """The TrainConfig the options ask for; what they leave out keeps TrainConfig's default."""
    from suggest.clusters import ClusterOptions
    from suggest.train.config import TrainConfig

    chosen: dict[str, Any] = {"encoder": encoder} if encoder else {}
    if beta is not None:
        chosen["awr_temperature"] = beta
    if advantage_lambda is not None:
        chosen["awr_lambda"] = advantage_lambda
    if action_k is not None:
        chosen["actions"] = ClusterOptions().fixed(action_k)
    if intent_k is not None:
        chosen["intents"] = ClusterOptions().fixed(intent_k)
    return TrainConfig(
        tenant=tenant,
        split=split,  # type: ignore[arg-type]  # click.Choice restricts it to the Literal
        reward=reward,  # type: ignore[arg-type]
        **chosen,
        encoder_quantization=quantization,  # type: ignore[arg-type]
        encoder_layers=encoder_layers,
        entities=entities,
        context=context,
        evaluate_heldout=evaluate,
        allow_noncommercial=allow_noncommercial,
        tune=tune,
    )


def _train_reserved(run: Callable[[], T], target: Path, *, reserved: bool) -> T:
    """Run a training; if it fails, give back the version ``new_version`` reserved for it."""
    from suggest.registry import staging_dir

    try:
        return guarded(run)
    except click.ClickException:
        if reserved:
            with contextlib.suppress(OSError):  # not empty: a crashed run's files, kept to look at
                staging_dir(target).rmdir()
        raise


def _print_training(result: Any) -> None:
    """Where the model went, what it cost, K and coverage, the held-out metrics."""
    metrics = result.model.manifest["metrics"]
    click.echo(
        f"model {result.model.version} -> {result.directory} in {result.seconds:.1f} s "
        f"(CPU {result.cpu_seconds:.1f} s) {result.timings}"
    )
    click.echo(
        f"actions K={metrics['actions']['k']} coverage {metrics['actions']['coverage']:.3f}; "
        f"intents K={metrics['intents']['k']} coverage {metrics['intents']['coverage']:.3f}"
    )
    tuning = result.model.manifest.get("tuning")
    if tuning:
        best = max(tuning["grid"], key=lambda r: r["awr_top3_successful"])
        click.echo(
            f"tuned ({len(tuning['grid'])} settings, {tuning['folds']} folds): "
            f"policy {tuning['policy']} CV top-3 successful {best['awr_top3_successful']:.4f}; "
            f"behaviour cloning C {tuning['behaviour_cloning_regularization']} "
            f"{max(r['bc_top3_successful'] for r in tuning['grid']):.4f}"
        )
    if "heldout" in metrics:
        _print_metrics({"held-out": metrics["heldout"]})


def _given(*names: str) -> bool:
    """Whether any of these options was given on the command line (not left at its default)."""
    from click.core import ParameterSource

    context = click.get_current_context()
    return any(context.get_parameter_source(n) is ParameterSource.COMMANDLINE for n in names)


def _feedback(use_db: bool, db_url: str | None, path: Path | None, tenant: str) -> list:
    from suggest.feedback import feedback_from_dict, read_feedback

    if path is not None:
        found = guarded(lambda: read_feedback(path))
        for issue in found.issues[:20]:
            click.echo(f"skipped feedback {issue}", err=True)
        # `voice feedback export` without --tenant writes every tenant's events
        records = [r for r in found.records if r.tenant == tenant]
        others = sorted({r.tenant for r in found.records} - {tenant})
        click.echo(
            f"{len(records)} feedback events of tenant {tenant!r} from {path}"
            + (f" ({len(found.records) - len(records)} of {others} left out)" if others else ""),
            err=True,
        )
        return records
    if not use_db:
        return []
    from voice.store import Store
    from voice.store.feedback import FeedbackStore

    url = existing_database(db_url)
    store = guarded(lambda: Store.open(url))
    try:
        rows = guarded(lambda: FeedbackStore(store).records(tenant=tenant))
    finally:
        store.close()
    records = []
    for row in rows:
        try:
            records.append(feedback_from_dict(row))
        except ValueError as error:
            click.echo(f"skipped feedback {row.get('suggestion_id')}: {error}", err=True)
    click.echo(f"{len(records)} feedback events from the database", err=True)
    return records


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
    _print_metrics({report.model_version: report.summary()})
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
    _print_metrics(
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


def _print_metrics(columns: dict[str, dict[str, Any]]) -> None:
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
    """Attach the suggestion-model commands."""
    for command in (train_command, evaluate_command, compare_command, suggest_command):
        cli.add_command(command)
