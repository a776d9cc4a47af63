"""A trained suggestion model and its self-describing directory (no pickle anywhere).

Layout of ``models/<tenant>/<version>/`` (see docs/suggestion-model.md):

- ``manifest.json``: schema version, architecture (module, class), library versions, specs,
  encoder, training data hash and split, parameters, metrics, created time, file digests;
- ``weights.safetensors``: every array (centroids, policy and baselines, value model, feedback
  bias, why-statistics, agent styles, exemplar vectors);
- ``actions.json``, ``intents.json``, ``exemplars.json``, ``agents.json``: the readable parts;
- ``encoder/``: the sentence encoder the model was trained with (ONNX MiniLM or a static
  table, as ``manifest.encoder.kind`` says; absent kind = ONNX, the original format).

``manifest.files`` holds the sha256 of every file, the encoder's as ``encoder/<name>``. Models
saved before the encoder's files were listed there (the bundled demo model among them) still
load; their encoder is checked when it is loaded (``suggest.encoder``) and by the engine.

Saving is a pure function of the loaded content (sorted keys, fixed formatting, the stored
``created`` time), so load-then-save reproduces every file byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from suggest.clusters import ClusterInfo
from suggest.encoder import encoder_files
from suggest.encoder.spec import EncoderSpec
from suggest.errors import ModelFormatError
from suggest.policy import LinearPolicy, OutcomeModel, WhyStats
from suggest.realise import REPEAT_COSINE, Exemplar, ExemplarBank, Slot
from suggest.specs import SPECS_VERSION, Specifications
from suggest.state import Vocabulary

MODEL_SCHEMA_VERSION = 1
ARCHITECTURE = {"module": "suggest.engine", "class": "SuggestionEngine"}
JSON_FILES = ("actions.json", "intents.json", "exemplars.json", "agents.json")
ENCODER_DIR = "encoder"


@dataclass
class SuggestionModel:
    """Everything a model directory holds, in memory."""

    specs: Specifications
    vocabulary: Vocabulary
    actions: list[ClusterInfo]
    intents: list[ClusterInfo]
    policy: LinearPolicy
    behaviour_cloning: LinearPolicy
    majority: np.ndarray
    """(n_actions,) action frequencies: the majority baseline."""
    outcome: OutcomeModel
    feedback_bias: np.ndarray
    """(n_intents + 1, n_actions) logits added from agent feedback (zeros without feedback)."""
    why: WhyStats
    bank: ExemplarBank
    encoder: EncoderSpec
    manifest: dict[str, Any] = field(default_factory=dict)
    """Tenant, version, training, parameters, metrics, created (see module docstring)."""

    @property
    def version(self) -> str:
        """``<tenant>/<version>``: what every suggestion records."""
        tenant = self.manifest.get("tenant", "default")
        return f"{tenant}/{self.manifest.get('version', 'unversioned')}"


def save_model(model: SuggestionModel, directory: Path, encoder_dir: Path) -> None:
    """Write ``model`` into ``directory`` (created; existing files are overwritten)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ENCODER_DIR).mkdir(exist_ok=True)
    for name in encoder_files(model.encoder):
        if (encoder_dir / name).resolve() != (directory / ENCODER_DIR / name).resolve():
            shutil.copyfile(encoder_dir / name, directory / ENCODER_DIR / name)
    _save_weights(model, directory / "weights.safetensors")
    _write_json(directory / "actions.json", [_cluster_to_dict(c) for c in model.actions])
    _write_json(directory / "intents.json", [_cluster_to_dict(c) for c in model.intents])
    _write_json(directory / "exemplars.json", [_exemplar_to_dict(e) for e in model.bank.exemplars])
    _write_json(directory / "agents.json", sorted(model.vocabulary.style))
    manifest = dict(model.manifest)
    manifest.update(
        {
            "schema_version": MODEL_SCHEMA_VERSION,
            "architecture": ARCHITECTURE,
            "specs": model.specs.to_dict(),
            "encoder": model.encoder.to_dict(),
            "files": {name: _sha256(directory / name) for name in _file_names(model.encoder)},
        }
    )
    _write_json(directory / "manifest.json", manifest)


def load_model(directory: Path) -> SuggestionModel:
    """Read a model directory written by :func:`save_model`.

    Raises:
        ModelFormatError: missing files or arrays, a digest mismatch, or an unknown schema version.
    """
    from safetensors import SafetensorError

    try:
        return _load_model(directory)
    except (KeyError, TypeError, ValueError) as error:  # a field or array this reader needs
        raise ModelFormatError(
            f"{directory} lacks or garbles {error}",
            hint="the model predates this reader; retrain it",
        ) from error
    except (OSError, SafetensorError) as error:  # unreadable or truncated weights
        raise ModelFormatError(
            f"{directory} cannot be read ({error})",
            hint="the model was modified or truncated; retrain or restore it",
        ) from error


def check_files(directory: Path, manifest: dict[str, Any]) -> None:
    """Every file of the model is there and matches the digest its manifest records.

    The encoder's files (``encoder/<name>``) are checked when the manifest lists them; a model
    saved before they were listed has its encoder checked when the encoder is loaded.

    Raises:
        ModelFormatError: the manifest lists no digests (or not every file's) or no valid
            ``encoder``, a file is missing, or it was modified or truncated.
    """
    files = manifest.get("files")
    try:
        expected = set(_file_names(EncoderSpec.from_dict(manifest["encoder"])))
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFormatError(
            f"{directory / 'manifest.json'} has no valid encoder entry ({error!r})",
            hint="restore the model as `voice train` wrote it, or retrain it",
        ) from error
    older = {name for name in expected if not name.startswith(ENCODER_DIR + "/")}
    if not isinstance(files, dict) or set(files) not in (expected, older):
        listed = sorted(files) if isinstance(files, dict) else files
        raise ModelFormatError(
            f"{directory / 'manifest.json'} does not record the digests of the model's files "
            f"(needs {sorted(expected)}, or {sorted(older)} for a model saved before encoder "
            f"digests; has {listed!r}); it cannot be checked, so it is not loaded",
            hint="restore the model as `voice train` wrote it, or retrain it",
        )
    for name, digest in sorted(files.items()):
        path = directory / name
        if not path.is_file():
            raise ModelFormatError(
                f"{path} is missing",
                hint="the model directory is incomplete; restore or retrain it",
            )
        if _sha256(path) != digest:
            raise ModelFormatError(
                f"{path} does not match its manifest digest",
                hint="the model was modified or truncated; retrain or restore it",
            )


def _file_names(encoder: EncoderSpec) -> tuple[str, ...]:
    """The files whose digests a model saved now records, its encoder's included."""
    encoder_names = (f"{ENCODER_DIR}/{name}" for name in encoder_files(encoder))
    return ("weights.safetensors", *JSON_FILES, *encoder_names)


def _load_model(directory: Path) -> SuggestionModel:
    manifest = read_manifest(directory)
    check_files(directory, manifest)
    raw = manifest["specs"]
    for name in ("entity_labels", "phase_edges", "context_names"):
        if isinstance(raw, dict) and not isinstance(raw.get(name, []), list):  # "DATE": 4 labels
            raise ModelFormatError(
                f"{directory / 'manifest.json'}: specs.{name} is {raw[name]!r}, not a list",
                hint="manifest.json was edited; restore it as `voice train` wrote it, or retrain",
            )
    specs = Specifications.from_dict(raw)
    from safetensors.numpy import load_file

    w = load_file(str(directory / "weights.safetensors"))
    agents = _read_json(directory / "agents.json")
    exemplars = [_exemplar_from_dict(e) for e in _read_json(directory / "exemplars.json")]
    encoder = EncoderSpec.from_dict(manifest["encoder"])
    _check_layout(directory, specs, encoder, w, n_agents=len(agents), n_exemplars=len(exemplars))
    vocabulary = Vocabulary(
        specs=specs,
        action_centroids=w["action_centroids"],
        intent_centroids=w["intent_centroids"],
        projection=w["projection"],
        projection_mean=w["projection_mean"],
        style={agent: w["agent_styles"][i] for i, agent in enumerate(agents)},
        global_style=w["global_style"],
    )
    return SuggestionModel(
        specs=specs,
        vocabulary=vocabulary,
        actions=[_cluster_from_dict(c) for c in _read_json(directory / "actions.json")],
        intents=[_cluster_from_dict(c) for c in _read_json(directory / "intents.json")],
        policy=LinearPolicy(w["policy.weights"], w["policy.bias"]),
        behaviour_cloning=LinearPolicy(w["behaviour_cloning.weights"], w["behaviour_cloning.bias"]),
        majority=w["majority"],
        outcome=OutcomeModel(w["outcome.weights"], float(w["outcome.bias"][0])),
        feedback_bias=w["feedback_bias"],
        why=WhyStats(
            w["why.won"],
            w["why.lost"],
            w["why.won_total"],
            w["why.lost_total"],
            w["why.won_any"],
            w["why.lost_any"],
            w["why.calls"],
        ),
        bank=ExemplarBank(
            exemplars,
            w["exemplar.contexts"],
            w["exemplar.texts"],
            specs.n_actions,
            repeat_cosine=_repeat_cosine(directory, manifest.get("repeat_cosine", REPEAT_COSINE)),
        ),
        encoder=encoder,
        manifest={
            k: v
            for k, v in manifest.items()
            if k not in ("specs", "encoder", "files", "architecture", "schema_version")
        },
    )


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of a model directory, checked for schema version and architecture.

    Raises:
        ModelFormatError: no manifest, one that is not a JSON object, or another schema version
            or architecture.
    """
    path = directory / "manifest.json"
    if not path.is_file():
        raise ModelFormatError(
            f"{directory} is not a suggestion model (no manifest.json)",
            hint="train one with `voice train`",
        )
    manifest = _read_json(path)
    if not isinstance(manifest, dict):
        raise ModelFormatError(
            f"{path} holds {type(manifest).__name__} JSON, not a manifest (a JSON object)",
            hint="restore the model as `voice train` wrote it, or retrain it",
        )
    schema = manifest.get("schema_version")
    if type(schema) is not int or schema != MODEL_SCHEMA_VERSION:  # not `true`, not 1.0
        raise ModelFormatError(
            f"{directory} has model schema {manifest.get('schema_version')!r}; "
            f"this nextline reads {MODEL_SCHEMA_VERSION}",
            hint="retrain with this version",
        )
    if manifest.get("architecture") != ARCHITECTURE:
        raise ModelFormatError(
            f"{directory} was written for {manifest.get('architecture')}",
            hint="load it with the class it names",
        )
    return manifest


def _check_layout(
    directory: Path,
    specs: Specifications,
    encoder: EncoderSpec,
    weights: dict[str, np.ndarray],
    *,
    n_agents: int,
    n_exemplars: int,
) -> None:
    """The manifest's specs (the state layout) agree with the arrays and the encoder.

    ``manifest.json`` is not covered by the file digests: a hand-edited layout would load and then
    fail on every suggestion.

    Raises:
        ModelFormatError: a size of the specs is not a positive whole number, the phase edges do
            not increase, or an array's shape (or the encoder's dimension) disagrees with them.
        KeyError: an array is missing (``load_model`` reports it).
    """
    problems = _spec_problems(specs)
    if not problems:
        expected = _expected_shapes(specs, n_agents=n_agents, n_exemplars=n_exemplars)
        problems = [
            f"{name} is {tuple(weights[name].shape)}, the specs make it {shape}"
            for name, shape in expected.items()
            if tuple(weights[name].shape) != shape
        ]
        problems += _value_problems(weights, expected)
        if encoder.dim != specs.embedding_dim:
            problems.append(
                f"the encoder embeds to {encoder.dim}, the specs' embedding_dim is "
                f"{specs.embedding_dim}"
            )
    if problems:
        raise ModelFormatError(
            f"the specs in {directory / 'manifest.json'} disagree with the model's weights: "
            + "; ".join(problems[:4])
            + (f" (and {len(problems) - 4} more)" if len(problems) > 4 else ""),
            hint="manifest.json was edited or mixed up with another model's; restore it as "
            "`voice train` wrote it, or retrain the model",
        )


def _value_problems(weights: dict[str, np.ndarray], names: Iterable[str]) -> list[str]:
    """Arrays :func:`_save_weights` never writes: another dtype, or NaN / infinite values (a NaN
    weight made every score uniform, or every exemplar unusable: no suggestion at all)."""
    problems = []
    for name in sorted(names):
        array = weights[name]
        if array.dtype != np.float32:
            problems.append(f"{name} is {array.dtype}, not float32")
        elif not np.isfinite(array).all():
            problems.append(f"{name} holds NaN or infinite values")
    return problems


def _repeat_cosine(directory: Path, value: object) -> float:
    """The manifest's ``repeat_cosine``: a cosine in (0, 1]. At -1 every exemplar counts as a
    repeat of the agent's last line (no suggestion at all); NaN or above 1 turns the guard off."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 < value <= 1.0:
        raise ModelFormatError(
            f"{directory / 'manifest.json'} has repeat_cosine {value!r}, not a cosine in (0, 1]",
            hint="manifest.json was edited; restore it as `voice train` wrote it, or retrain",
        )
    return float(value)


def _spec_problems(specs: Specifications) -> list[str]:
    """What makes the specs no layout at all (sizes that are not whole numbers, phase edges), or
    constants every suggestion would trip on (a decay that is not a number in (0, 1], entity or
    context names that are not distinct strings, a specs version this reader does not know)."""
    problems = []
    if type(specs.version) is not int or specs.version != SPECS_VERSION:
        problems.append(f"specs version {specs.version!r}; this reader knows {SPECS_VERSION}")
    for name in ("embedding_dim", "projection_dim", "n_actions", "n_intents"):
        value = getattr(specs, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append(f"{name} is {value!r}, not a positive whole number")
    for name in ("summary_decay", "history_decay"):  # "0.2" or null: a TypeError per suggestion
        value = getattr(specs, name)
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 < value <= 1.0:
            problems.append(f"{name} is {value!r}, not a number in (0, 1]")
    for name in ("entity_labels", "context_names"):
        names = getattr(specs, name)
        if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
            problems.append(f"{name} {list(names)!r} are not distinct names")
    edges = specs.phase_edges
    if (
        not edges
        or not all(isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in edges)
        or any(b <= a for a, b in zip(edges, edges[1:], strict=False))
    ):
        problems.append(f"phase_edges {list(edges)!r} are not increasing turn indices")
    return problems


def _expected_shapes(
    specs: Specifications, *, n_agents: int, n_exemplars: int
) -> dict[str, tuple[int, ...]]:
    """The shape of every array :func:`_save_weights` writes, from the specs."""
    e, d, k, i, f = (
        specs.embedding_dim,
        specs.projection_dim,
        specs.n_actions,
        specs.n_intents,
        specs.n_features,
    )
    return {
        "action_centroids": (k, e),
        "intent_centroids": (i, e),
        "agent_styles": (n_agents, k),
        "global_style": (k,),
        "projection": (e, d),
        "projection_mean": (e,),
        "policy.weights": (k, f),
        "policy.bias": (k,),
        "behaviour_cloning.weights": (k, f),
        "behaviour_cloning.bias": (k,),
        "majority": (k,),
        "outcome.weights": (f,),
        "outcome.bias": (1,),
        "feedback_bias": (i + 1, k),
        "why.won": (i + 1, k),
        "why.lost": (i + 1, k),
        "why.won_total": (i + 1,),
        "why.lost_total": (i + 1,),
        "why.won_any": (k,),
        "why.lost_any": (k,),
        "why.calls": (2,),
        "exemplar.contexts": (n_exemplars, e),
        "exemplar.texts": (n_exemplars, e),
    }


def _save_weights(model: SuggestionModel, path: Path) -> None:
    from safetensors.numpy import save_file

    vocabulary = model.vocabulary
    agents = sorted(vocabulary.style)
    styles = (
        np.stack([vocabulary.style[a] for a in agents])
        if agents
        else np.zeros((0, model.specs.n_actions), np.float32)
    )
    arrays = {
        "action_centroids": vocabulary.action_centroids,
        "intent_centroids": vocabulary.intent_centroids,
        "agent_styles": styles,
        "global_style": vocabulary.global_style,
        "projection": vocabulary.projection,
        "projection_mean": vocabulary.projection_mean,
        "policy.weights": model.policy.weights,
        "policy.bias": model.policy.bias,
        "behaviour_cloning.weights": model.behaviour_cloning.weights,
        "behaviour_cloning.bias": model.behaviour_cloning.bias,
        "majority": model.majority,
        "outcome.weights": model.outcome.weights,
        "outcome.bias": np.array([model.outcome.bias]),
        "feedback_bias": model.feedback_bias,
        "why.won": model.why.won,
        "why.lost": model.why.lost,
        "why.won_total": model.why.won_total,
        "why.lost_total": model.why.lost_total,
        "why.won_any": model.why.won_any,
        "why.lost_any": model.why.lost_any,
        "why.calls": model.why.calls,
        "exemplar.contexts": model.bank.contexts,
        "exemplar.texts": model.bank.texts,
    }
    save_file(
        {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sorted(arrays.items())}, str(path)
    )


def _cluster_to_dict(info: ClusterInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "name": info.name,
        "keywords": list(info.keywords),
        "medoid": info.medoid,
        "examples": list(info.examples),
        "size": info.size,
        "share": info.share,
    }


def _cluster_from_dict(data: dict[str, Any]) -> ClusterInfo:
    return ClusterInfo(
        id=data["id"],
        name=data["name"],
        keywords=tuple(data["keywords"]),
        medoid=data["medoid"],
        examples=tuple(data["examples"]),
        size=data["size"],
        share=data["share"],
    )


def _exemplar_to_dict(exemplar: Exemplar) -> dict[str, Any]:
    return {
        "action": exemplar.action,
        "text": exemplar.text,
        "agent_id": exemplar.agent_id,
        "source": exemplar.source,
        "slots": [{"label": s.label, "start": s.start, "end": s.end} for s in exemplar.slots],
    }


def _exemplar_from_dict(data: dict[str, Any]) -> Exemplar:
    return Exemplar(
        action=data["action"],
        text=data["text"],
        agent_id=data["agent_id"],
        source=data["source"],
        slots=tuple(Slot(s["label"], s["start"], s["end"]) for s in data["slots"]),
    )


def _write_json(path: Path, data: Any) -> None:
    path.write_text(
        json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise ModelFormatError(
            f"{path} is missing", hint="the model directory is incomplete; retrain it"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ModelFormatError(
            f"{path} is not valid JSON ({error})", hint="the file is corrupt; retrain"
        ) from error


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
