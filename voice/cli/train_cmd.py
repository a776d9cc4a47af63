"""``voice train``: a tenant's suggestion model from conversations with outcomes (and feedback).

The engine (``suggest.train``) does the work; this reads the data and the feedback, reserves the
model's version in the registry, and prints what the training cost and scored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from voice.cli.server_options import existing_database
from voice.cli.suggest_cmds import (
    CACHE_ENV,
    conversations_option,
    default_cache,
    guarded,
    load_conversations,
    models_root_option,
    print_metrics,
)

T = TypeVar("T")


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
    guarded(lambda: check_name(tenant, "tenant"))  # also with --out: the model records it, serving looks it up
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
    target = out_dir or guarded(lambda: ModelRegistry(models_root).new_version(tenant))
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
    """Run a training; however it ends (a typed error, a crash, Ctrl-C), give back the version
    ``new_version`` reserved for it unless the model was published there."""
    from suggest.registry import staging_dir

    try:
        return guarded(run)
    finally:
        if reserved:
            with contextlib.suppress(OSError):  # already gone: the training published the model
                staging_dir(target).rmdir()


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
        print_metrics({"held-out": metrics["heldout"]})


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
    damaged: list[str] = []
    try:
        rows = guarded(lambda: FeedbackStore(store).records(tenant=tenant, damaged=damaged))
    finally:
        store.close()
    for where in damaged:  # a row the database cannot give back: skipped like a bad event
        click.echo(f"skipped feedback {where}", err=True)
    records = []
    for row in rows:
        try:
            records.append(feedback_from_dict(row))
        except ValueError as error:
            click.echo(f"skipped feedback {row.get('suggestion_id')}: {error}", err=True)
    click.echo(f"{len(records)} feedback events from the database", err=True)
    return records


def register(cli: click.Group) -> None:
    """Attach ``voice train``."""
    cli.add_command(train_command)
