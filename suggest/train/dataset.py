"""Replay conversations through :class:`~suggest.state.CallState` into training rows.

One row per agent turn: the state *before* the turn (what the live engine would have seen), the
action the agent took, the conversation's return, the customer intent it answered, and the
context vector used to retrieve that turn as an exemplar later.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from suggest.policy import WhyStats
from suggest.specs import Specifications
from suggest.state import CallState, Vocabulary
from suggest.types import Conversation, Turn

EmbeddingLookup = Callable[[str], np.ndarray]
EntityLookup = Callable[[Turn], list[tuple[str, str]]]


@dataclass
class TrainingRows:
    """Aligned arrays, one entry per agent turn of the replayed conversations."""

    features: np.ndarray
    actions: np.ndarray
    conversation: np.ndarray
    """Index into the replayed conversation list (the group for cross-fitting)."""
    turn: np.ndarray
    """Index of the agent turn inside its conversation."""
    intent_before: np.ndarray
    """Intent of the latest customer turn before it; -1 before any customer turn."""
    contexts: np.ndarray
    """Unit context vectors (state before the turn) for exemplar retrieval."""
    reward: np.ndarray
    success: np.ndarray


def conversation_actions(
    conversations: Sequence[Conversation], embed: EmbeddingLookup, vocabulary: Vocabulary
) -> list[np.ndarray]:
    """Nearest action of every agent turn, per conversation."""
    out = []
    for conversation in conversations:
        agent = [embed(t.text) for t in conversation.turns if t.role == "agent"]
        out.append(
            (np.stack(agent) @ vocabulary.action_centroids.T).argmax(axis=1)
            if agent
            else np.zeros(0, np.int64)
        )
    return out


def agent_styles(
    conversations: Sequence[Conversation],
    actions: Sequence[np.ndarray],
    n_actions: int,
    prior: float,
) -> tuple[dict[str, np.ndarray], np.ndarray, list[np.ndarray]]:
    """(style per agent, global style, leave-own-conversation-out style per conversation).

    Style = the agent's action frequencies smoothed toward everyone's with ``prior`` pseudo-counts.
    Training rows use the leave-one-out style so a conversation never sees its own actions.
    """
    everyone = np.bincount(
        np.concatenate(actions) if actions else np.zeros(0, np.int64), minlength=n_actions
    ).astype(np.float32)
    global_style = everyone / max(everyone.sum(), 1.0)
    per_agent: dict[str, np.ndarray] = {}
    for conversation, labels in zip(conversations, actions, strict=True):
        if conversation.agent_id:
            counts = per_agent.setdefault(conversation.agent_id, np.zeros(n_actions, np.float32))
            counts += np.bincount(labels, minlength=n_actions)

    def smooth(counts: np.ndarray) -> np.ndarray:
        return ((counts + prior * global_style) / (counts.sum() + prior)).astype(np.float32)

    styles = {agent: smooth(counts) for agent, counts in per_agent.items()}
    loo = []
    for conversation, labels in zip(conversations, actions, strict=True):
        if conversation.agent_id:
            loo.append(
                smooth(per_agent[conversation.agent_id] - np.bincount(labels, minlength=n_actions))
            )
        else:
            loo.append(global_style)
    return styles, global_style, loo


def replay(
    conversations: Sequence[Conversation],
    rewards: np.ndarray,
    embed: EmbeddingLookup,
    entities: EntityLookup,
    vocabulary: Vocabulary,
    styles: Sequence[np.ndarray],
) -> TrainingRows:
    """Training rows of every agent turn (see module docstring)."""
    specs: Specifications = vocabulary.specs
    rows: dict[str, list] = {
        k: []
        for k in (
            "features",
            "actions",
            "conversation",
            "turn",
            "intent",
            "contexts",
            "reward",
            "success",
        )
    }
    for index, conversation in enumerate(conversations):
        state = CallState(specs)
        state.set_context(conversation.context)
        for turn_index, turn in enumerate(conversation.turns):
            embedding = embed(turn.text)
            if turn.role == "agent":
                rows["features"].append(state.features(vocabulary, styles[index]))
                rows["contexts"].append(state.context_vector())
                rows["intent"].append(state.last_intent)
                rows["conversation"].append(index)
                rows["turn"].append(turn_index)
                rows["reward"].append(rewards[index])
                rows["success"].append(conversation.outcome.success)
            cluster = state.advance(turn.role, embedding, vocabulary, entities(turn))
            if turn.role == "agent":
                rows["actions"].append(cluster)
    n = len(rows["actions"])
    return TrainingRows(
        features=np.stack(rows["features"]) if n else np.zeros((0, specs.n_features), np.float32),
        actions=np.array(rows["actions"], dtype=np.int64),
        conversation=np.array(rows["conversation"], dtype=np.int64),
        turn=np.array(rows["turn"], dtype=np.int64),
        intent_before=np.array(rows["intent"], dtype=np.int64),
        contexts=np.stack(rows["contexts"])
        if n
        else np.zeros((0, specs.embedding_dim), np.float32),
        reward=np.array(rows["reward"], dtype=np.float32),
        success=np.array(rows["success"], dtype=bool),
    )


def why_statistics(rows: TrainingRows, n_intents: int, n_actions: int) -> WhyStats:
    """Per (intent answered, action) counts of won and lost conversations (see ``WhyStats``)."""
    won = np.zeros((n_intents + 1, n_actions), np.float32)
    lost = np.zeros_like(won)
    won_total = np.zeros(n_intents + 1, np.float32)
    lost_total = np.zeros_like(won_total)
    won_any = np.zeros(n_actions, np.float32)
    lost_any = np.zeros_like(won_any)
    calls = np.zeros(2, np.float32)
    intents = np.where(rows.intent_before < 0, n_intents, rows.intent_before)
    for conversation in np.unique(rows.conversation):
        mask = rows.conversation == conversation
        pairs = set(zip(intents[mask].tolist(), rows.actions[mask].tolist(), strict=True))
        seen = {intent for intent, _ in pairs}
        success = bool(rows.success[mask][0])
        target, total, anywhere = (
            (won, won_total, won_any) if success else (lost, lost_total, lost_any)
        )
        for intent, action in pairs:
            target[intent, action] += 1
        for intent in seen:
            total[intent] += 1
        anywhere[np.unique(rows.actions[mask])] += 1
        calls[0 if success else 1] += 1
    return WhyStats(won, lost, won_total, lost_total, won_any, lost_any, calls)
