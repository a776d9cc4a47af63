"""Entity extraction and PII redaction for call transcripts.

spaCy's small English NER (people, organisations, places, dates, ...) plus patterns for what
contact centers care about: money (incl. "forty dollars"), dates, phone numbers (incl. digits
read out one by one), e-mails, card numbers (Luhn-checked), SSNs, and order/account/reference
ids. Patterns win over spaCy where they overlap; the result never overlaps.

``EntityExtractor.load()`` loads the pipeline once per process (about 1.5 s); ``extract`` costs
a few milliseconds per sentence, ``extract_batch`` less per sentence through ``nlp.pipe``.
``redact`` masks card numbers, SSNs, e-mails and phone numbers as ``[CARD]`` etc.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Iterable, Sequence

import spacy
from spacy.language import Language
from spacy.matcher import Matcher
from spacy.tokens import Doc

from suggest.models import spacy_model_name
from suggest.nlu.patterns import find_structured
from suggest.nlu.spoken import build_matcher, date_value, find_spoken, money_value
from suggest.nlu.types import PRIORITY_SPACY, Candidate, Entity

__all__ = ["REDACTED_LABELS", "Entity", "EntityExtractor"]

REDACTED_LABELS = frozenset({"CARD", "SSN", "EMAIL", "PHONE"})
"""Labels ``redact`` masks by default: data a call recording must not keep in clear text."""

SPACY_LABELS = frozenset(
    {
        "PERSON",
        "NORP",
        "FAC",
        "ORG",
        "GPE",
        "LOC",
        "PRODUCT",
        "EVENT",
        "WORK_OF_ART",
        "LAW",
        "LANGUAGE",
        "DATE",
        "TIME",
        "PERCENT",
        "MONEY",
        "QUANTITY",
    }
)
"""spaCy labels kept; CARDINAL and ORDINAL are dropped: bare numbers say nothing on their own."""

# Only NER is needed: the tagger, parser and lemmatizer would triple the cost per sentence.
_EXCLUDED_PIPES = ["tagger", "parser", "attribute_ruler", "lemmatizer", "senter"]
# spaCy refuses texts over nlp.max_length (1M chars) and slows down on huge Docs; long texts
# (whole-call transcripts) go through in pieces of about this size.
_CHUNK_CHARS = 20_000

_load_lock = threading.Lock()
_loaded: EntityExtractor | None = None


class EntityExtractor:
    """spaCy NER plus contact-center patterns. Build with :meth:`load`; safe to share."""

    def __init__(self, nlp: Language, matcher: Matcher) -> None:
        """Wrap a loaded pipeline; prefer :meth:`load`, which shares one per process."""
        self._nlp = nlp
        self._matcher = matcher

    @classmethod
    def load(cls) -> EntityExtractor:
        """The process-wide extractor (loaded on first call).

        Raises:
            suggest.models.ModelNotFoundError: the spaCy model package is not installed.
        """
        global _loaded
        with _load_lock:
            if _loaded is None:
                nlp = spacy.load(spacy_model_name(), exclude=_EXCLUDED_PIPES)
                _loaded = cls(nlp, build_matcher(nlp.vocab))
            return _loaded

    def extract(self, text: str) -> list[Entity]:
        """Entities in ``text``, sorted by position, never overlapping."""
        return self._entities(text, self._docs(text))

    def extract_batch(self, texts: Sequence[str]) -> list[list[Entity]]:
        """:meth:`extract` for many texts at once (faster per text through ``nlp.pipe``)."""
        short = [i for i, t in enumerate(texts) if len(t) <= _CHUNK_CHARS]
        docs = dict(zip(short, self._nlp.pipe(texts[i] for i in short), strict=True))
        return [
            self._entities(text, [(0, docs[i])] if i in docs else self._docs(text))
            for i, text in enumerate(texts)
        ]

    def redact(
        self,
        text: str,
        entities: Iterable[Entity] | None = None,
        labels: Iterable[str] = REDACTED_LABELS,
    ) -> str:
        """``text`` with every entity of ``labels`` replaced by ``[LABEL]``.

        ``entities`` defaults to :meth:`extract` of ``text``; pass them to avoid a second run.
        """
        masked = frozenset(labels)
        found = self.extract(text) if entities is None else list(entities)
        spans = sorted((e for e in found if e.label in masked), key=lambda e: e.start)
        pieces, position = [], 0
        for entity in spans:
            if entity.start < position:  # overlapping input: the earlier mask already covers it
                continue
            pieces.append(text[position : entity.start])
            pieces.append(f"[{entity.label}]")
            position = entity.end
        pieces.append(text[position:])
        return "".join(pieces)

    def _docs(self, text: str) -> list[tuple[int, Doc]]:
        """(offset, Doc) pieces of ``text``, cut at whitespace when it is long."""
        if len(text) <= _CHUNK_CHARS:
            return [(0, self._nlp(text))]
        offsets, start = [], 0
        while start < len(text):
            end = min(len(text), start + _CHUNK_CHARS)
            if end < len(text):
                cut = text.rfind(" ", start + _CHUNK_CHARS // 2, end)
                end = cut + 1 if cut > 0 else end
            offsets.append((start, end))
            start = end
        docs = self._nlp.pipe(text[a:b] for a, b in offsets)
        return [(a, doc) for (a, _), doc in zip(offsets, docs, strict=True)]

    def _entities(self, text: str, docs: list[tuple[int, Doc]]) -> list[Entity]:
        candidates = find_structured(text)
        for offset, doc in docs:
            candidates.extend(find_spoken(doc, self._matcher, text, offset))
            candidates.extend(_spacy_candidates(doc, text, offset))
        return _resolve_overlaps(candidates)


_MASK = re.compile(r"\[[A-Z_]+\]")
"""A redaction mask (``[CARD]``): spaCy reads some as organisations ("CARD")."""


def _spacy_candidates(doc: Doc, text: str, offset: int) -> list[Candidate]:
    found = []
    masks = [m.span() for m in _MASK.finditer(text)]
    for ent in doc.ents:
        start, end = offset + ent.start_char, offset + ent.end_char
        if (
            ent.label_ not in SPACY_LABELS
            or not ent.text.strip()
            or _bare_digits_as_date(ent.label_, ent.text)
            or any(a < end and start < b for a, b in masks)
        ):
            continue
        words = [t.text for t in ent]
        value = None
        if ent.label_ == "MONEY":
            value = money_value(words)
        elif ent.label_ == "DATE":
            value = date_value(words)
        found.append(
            Candidate(
                Entity(ent.label_, text[start:end], start, end, value or ent.text), PRIORITY_SPACY
            )
        )
    return found


def _bare_digits_as_date(label: str, text: str) -> bool:
    """spaCy's small model tags read-out digit groups ("3 1 8", "370318") as DATE or TIME;
    a bare number is only a date when it is a year."""
    compact = re.sub(r"[\s-]", "", text)
    return label in ("DATE", "TIME") and compact.isdigit() and not _YEAR.match(compact)


_YEAR = re.compile(r"^(?:19|20)\d{2}$")


def _resolve_overlaps(candidates: list[Candidate]) -> list[Entity]:
    """Keep the best candidates that do not overlap: lower priority first, then longer spans."""
    ranked = sorted(
        candidates, key=lambda c: (c.priority, -(c.entity.end - c.entity.start), c.entity.start)
    )
    starts: list[int] = []  # sorted starts of the chosen, non-overlapping entities
    chosen: dict[int, Entity] = {}
    for candidate in ranked:
        entity = candidate.entity
        if entity.end <= entity.start:
            continue
        i = bisect.bisect_left(starts, entity.start)
        overlaps_next = i < len(starts) and starts[i] < entity.end
        overlaps_previous = i > 0 and chosen[starts[i - 1]].end > entity.start
        if not overlaps_next and not overlaps_previous:
            starts.insert(i, entity.start)
            chosen[entity.start] = entity
    return [chosen[start] for start in starts]
