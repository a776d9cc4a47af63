"""The train/infer contract: what a state vector is made of, shared by training and serving.

Saved in every model's manifest (``specs``); ``suggest.state`` builds feature vectors from it,
so a model can only be served with the layout it was trained with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

SPECS_VERSION = 1


@dataclass(frozen=True)
class Specifications:
    """Sizes and constants of the fixed-size call state and its feature vector."""

    embedding_dim: int
    projection_dim: int
    """Turn embeddings enter the policy through a PCA to this size (fewer weights, faster fits)."""
    n_actions: int
    n_intents: int
    entity_labels: tuple[str, ...]
    """Entity labels with a presence bit, in order (labels seen in training)."""
    phase_edges: tuple[int, ...] = (0, 1, 3, 6, 10, 15, 22)
    """Turn-index bucket starts: the conversation phase without knowing the call's length."""
    summary_decay: float = 0.2
    """Weight of the newest turn in the running summary (an exponential moving average)."""
    history_decay: float = 0.7
    """Per agent turn decay of the action-history counts."""
    style_prior: float = 20.0
    """Pseudo-count pulling an agent's action mix toward everyone's (few calls: little style)."""
    version: int = SPECS_VERSION
    context_names: tuple[str, ...] = ()
    """Call-start facts (``Conversation.context``) in the state, in this order: each name's
    value, then each name's presence bit. Empty: no context block (and none in the manifest)."""

    def blocks(self) -> list[tuple[str, int]]:
        """(name, width) of each feature block, in vector order."""
        d, k = self.projection_dim, self.n_actions
        return [
            ("last_customer", d),
            ("last_agent", d),
            ("summary", d),
            ("intent", self.n_intents + 1),
            ("last_action", k + 1),
            ("action_history", k),
            ("phase", len(self.phase_edges)),
            ("last_role", 3),
            ("entities", len(self.entity_labels)),
            ("agent_style", k),
            *(
                [("context", len(self.context_names)), ("context_present", len(self.context_names))]
                if self.context_names
                else []
            ),
        ]

    @property
    def n_features(self) -> int:
        """Length of a state feature vector."""
        return sum(width for _, width in self.blocks())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        data = asdict(self)
        data["entity_labels"] = list(self.entity_labels)
        data["phase_edges"] = list(self.phase_edges)
        if self.context_names:
            data["context_names"] = list(self.context_names)
        else:  # models without context keep their manifests byte for byte
            del data["context_names"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Specifications:
        """Inverse of :meth:`to_dict`."""
        return cls(
            **{
                **data,
                "entity_labels": tuple(data["entity_labels"]),
                "phase_edges": tuple(data["phase_edges"]),
                "context_names": tuple(data.get("context_names", ())),
            }
        )
