"""LocalAgreement(n): commit the words that the last n hypotheses agree on (pure, no model).

The streaming policy of whisper_streaming (Macháček et al., 2023, "Turning Whisper into
Real-Time Transcription System"; ``HypothesisBuffer`` in ``whisper_online.py``): the growing
audio buffer is decoded again every step, and a word is *committed* once the newest ``n``
hypotheses all contain it at the same place after the committed prefix. Committed words are
never retracted; the rest of the newest hypothesis is *tentative*.

Differences from the reference implementation:

- Words are compared after a light normalisation (case, surrounding punctuation), so
  ``"Hello,"`` and ``"hello"`` agree; the committed form and times are the newest hypothesis'.
- ``n`` is a parameter (the paper's LocalAgreement-n); n = 1 commits every hypothesis at once.
- :meth:`LocalAgreement.commit_until` commits tentative words that end before a given time
  without waiting for agreement; the streaming transcriber uses it when the VAD reports a pause
  (measured in docs/results/streaming.md).

Times are absolute (seconds of the caller's timeline); the policy never sees audio.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import replace

from asr.types import Word

__all__ = ["LocalAgreement", "shifted", "word_key"]

_EDGE_PUNCTUATION = re.compile(r"^[^\w']+|[^\w']+$")

# A new hypothesis may repeat the last committed words (the audio buffer still holds their
# audio); overlaps of up to this many words are cut off its head (whisper_streaming uses 5).
_MAX_OVERLAP_WORDS = 5

# Words of a new hypothesis that start this much before the last committed end are taken to be
# re-recognitions of committed audio (whisper_streaming's 0.1 s tolerance).
_COMMITTED_TOLERANCE = 0.1


def word_key(text: str) -> str:
    """The form in which two hypotheses' words are compared: lower case, no edge punctuation."""
    return _EDGE_PUNCTUATION.sub("", text.lower())


class LocalAgreement:
    """Hypothesis buffer of LocalAgreement(n) for one audio stream.

    Use: :meth:`insert` each new hypothesis (absolute times), then :meth:`flush` to get the words
    that became committed; :attr:`tentative` is the unconfirmed tail of the newest hypothesis.
    """

    def __init__(self, n: int = 2) -> None:
        if n < 1:
            raise ValueError(f"LocalAgreement needs n >= 1, not {n}")
        self.n = n
        """How many consecutive hypotheses must agree before a word is committed."""
        self.committed: list[Word] = []
        """Every word committed since the last :meth:`reset`, in order."""
        self._recent: deque[list[Word]] = deque(maxlen=n)  # uncommitted tails, oldest first
        self._trimmed_before = float("-inf")  # committed words ending by then left the buffer

    @property
    def last_committed_end(self) -> float:
        """End time of the last committed word (``-inf`` before the first commit)."""
        return self.committed[-1].end if self.committed else float("-inf")

    @property
    def tentative(self) -> list[Word]:
        """The newest hypothesis' words after the committed prefix (may still change)."""
        return list(self._recent[-1]) if self._recent else []

    def insert(self, words: Sequence[Word]) -> None:
        """Add a hypothesis of the buffer's audio (absolute times), after removing committed
        words it recognises again."""
        self._recent.append(self._without_committed(words))

    def flush(self) -> list[Word]:
        """Commit the prefix on which the newest ``n`` hypotheses agree; return those words."""
        if len(self._recent) < self.n:
            return []
        newest = self._recent[-1]
        agreed = 0
        while agreed < len(newest) and all(
            agreed < len(h) and word_key(h[agreed].text) == word_key(newest[agreed].text)
            for h in self._recent
        ):
            agreed += 1
        return self._commit(agreed)

    def commit_until(self, time: float) -> list[Word]:
        """Commit the newest hypothesis' words that end by ``time``, agreed or not."""
        newest = self._recent[-1] if self._recent else []
        count = 0
        while count < len(newest) and newest[count].end <= time + 1e-6:
            count += 1
        return self._commit(count)

    def commit_all(self) -> list[Word]:
        """Commit the whole newest hypothesis (end of stream)."""
        return self._commit(len(self._recent[-1]) if self._recent else 0)

    def trim(self, before: float) -> None:
        """Forget committed words ending by ``before`` for overlap matching (buffer trimmed).

        :attr:`committed` keeps them; only the overlap check against new hypotheses stops
        looking at them, as the audio they came from is no longer decoded.
        """
        self._trimmed_before = before

    def reset(self) -> None:
        """Forget everything (a new turn or stream)."""
        self.committed = []
        self._recent.clear()
        self._trimmed_before = float("-inf")

    def _commit(self, count: int) -> list[Word]:
        if count == 0:
            return []
        newest = self._recent[-1]
        words = newest[:count]
        self.committed.extend(words)
        # The older hypotheses lose the same prefix (agreed on, or forced by commit_until).
        older = [_drop_words(h, words) for h in list(self._recent)[:-1]]
        self._recent = deque([*older, newest[count:]], maxlen=self.n)
        return list(words)

    def _without_committed(self, words: Sequence[Word]) -> list[Word]:
        """Drop words of already committed audio, then any n-gram repeating the committed tail."""
        cut = self.last_committed_end - _COMMITTED_TOLERANCE
        fresh = [w for w in words if w.start > cut]
        if not fresh or fresh[0].start > self.last_committed_end + 1.0:
            return fresh
        tail = [w for w in self.committed if w.end > self._trimmed_before]
        for size in range(min(_MAX_OVERLAP_WORDS, len(tail), len(fresh)), 0, -1):
            if [word_key(w.text) for w in fresh[:size]] == [word_key(w.text) for w in tail[-size:]]:
                return fresh[size:]
        return fresh


def _drop_words(hypothesis: list[Word], committed: list[Word]) -> list[Word]:
    """``hypothesis`` without a leading run matching ``committed`` (by key), as far as it goes."""
    index = 0
    while (
        index < len(hypothesis)
        and index < len(committed)
        and word_key(hypothesis[index].text) == word_key(committed[index].text)
    ):
        index += 1
    if index == len(committed):
        return hypothesis[index:]
    # An older hypothesis that disagreed with a forced commit: drop what lies before its end.
    end = committed[-1].end
    return [w for w in hypothesis if w.start >= end - _COMMITTED_TOLERANCE]


def shifted(words: Sequence[Word], seconds: float) -> list[Word]:
    """``words`` moved by ``seconds`` (buffer-relative times to absolute ones)."""
    return [
        replace(w, start=round(w.start + seconds, 3), end=round(w.end + seconds, 3)) for w in words
    ]
