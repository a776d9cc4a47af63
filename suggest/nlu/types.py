"""Entity records shared by the pattern scanners and the extractor."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Entity:
    """An entity in a text: ``text == source[start:end]``; ``value`` is its normalised form.

    Values: digits only for PHONE, CARD, SSN and ACCOUNT_ID; upper-case code for ORDER_ID and
    REFERENCE; ``"40.00 USD"`` for MONEY; ISO ``2024-03-15`` (``--03-15`` without a year) for
    DATE where the date is explicit; lower-case address for EMAIL; otherwise the text itself.
    """

    label: str
    text: str
    start: int
    end: int
    value: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """A possible entity from one scanner; lower ``priority`` wins where candidates overlap."""

    entity: Entity
    priority: int


# Overlap priorities (lower wins). Data that must be redacted comes first; then validated
# structured forms; spaCy's statistical entities are below every pattern.
PRIORITY_EMAIL = 0
PRIORITY_CARD = 1
PRIORITY_SSN = 2
PRIORITY_NUMERIC_DATE = 3
PRIORITY_KEYWORD_ID = 4
PRIORITY_PHONE = 5
PRIORITY_CODE = 6
PRIORITY_MONEY = 7
PRIORITY_SPOKEN_DATE = 8
PRIORITY_SPACY = 100


def make_candidate(
    text: str, label: str, start: int, end: int, value: str, priority: int
) -> Candidate:
    """A candidate whose ``entity.text`` is sliced from ``text``."""
    return Candidate(Entity(label, text[start:end], start, end, value), priority)
