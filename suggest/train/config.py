"""Training options: one frozen dataclass, recorded in the manifest as ``parameters``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from suggest.clusters import ClusterOptions
from suggest.data.split import Split


@dataclass(frozen=True)
class TrainConfig:
    """How to train one tenant's model. Defaults are the measured choices (docs/results)."""

    tenant: str = "default"
    split: Split = "train"
    """Which side of the fixed held-out split to train on; ``all`` for a production model."""
    actions: ClusterOptions = field(default_factory=ClusterOptions)
    """How agent turns become actions; ``ClusterOptions().fixed(K)`` fixes K (``--actions``)."""
    intents: ClusterOptions = field(default_factory=ClusterOptions)
    """How customer turns become intents; ``fixed(K)`` as for actions (``--intents``)."""
    projection_dim: int = 32
    """PCA size of turn embeddings inside the policy's state."""
    reward: Literal["success", "value"] = "success"
    """Return of a conversation: success (0/1), or value scaled to 0..1 (``suggest.train.returns``)."""
    awr_temperature: float = 1.0
    """beta of advantage-weighted behaviour cloning: weight = exp((R - V(s)) / beta)."""
    awr_lambda: float = 0.0
    """Mix of Monte-Carlo (1) and one-step (0) advantage; see ``policy_fit.advantages``."""
    awr_max_weight: float = 20.0
    regularization: float = 0.003
    """Inverse L2 strength (sklearn ``C``) of every logistic model."""
    bc_regularization: float | None = None
    """``C`` of the behaviour-cloning baseline when it differs (``tune`` picks each its own)."""
    tune: bool = False
    """Choose return, C, beta and lambda by cross-validation on the training side
    (``suggest.train.tuning``) instead of taking the defaults above."""
    max_iter: int = 1000
    value_folds: int = 5
    """V(s) is cross-fitted over this many conversation folds, so advantages are honest."""
    max_exemplars_per_action: int = 400
    feedback_weight: float = 2.0
    """Sample weight of a training row added by an accepted or edited suggestion."""
    feedback_prior: float = 10.0
    """Pseudo-count shrinking the feedback log-odds bias toward 0 when feedback is scarce."""
    entities: bool = True
    """Extract entities (spaCy + patterns) for state bits and exemplar delexicalisation."""
    encoder: Literal["minilm", "static"] = "minilm"
    """Turn encoder, trained and served together (``suggest.train.encoders``)."""
    encoder_quantization: Literal["none", "int8"] = "int8"
    """MiniLM only: int8 per channel (default) or fp32."""
    encoder_layers: int = 6
    """MiniLM only: keep the first layers (fewer = cheaper, a different embedding space)."""
    max_tokens: int = 128
    static_dims: int = 256
    """Static only: PCA size of the distilled token table (model2vec's default)."""
    static_fit_texts: int = 20_000
    """Static only: training texts the map into MiniLM's space is fitted on (0: no map)."""
    min_conversations: int = 20
    allow_noncommercial: bool = False
    """Train on CC BY-NC data (internal evaluation only; the manifest marks the model)."""
    context: bool = True
    """Append the conversations' call-start facts (``Conversation.context``) to the state."""
    evaluate_heldout: bool = True
    """Score the held-out side into the manifest's metrics when training on ``train``."""
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (nested cluster options included)."""
        data = asdict(self)
        for key in ("actions", "intents"):
            data[key]["k_grid"] = list(data[key]["k_grid"])
        for key, unset in (("bc_regularization", None), ("tune", False)):
            if data[key] == unset:  # untuned models keep their manifests byte for byte
                del data[key]
        return data
