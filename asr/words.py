"""Word lists as Whisper writes them: words from its word pieces, and text from words.

Whisper marks a word that starts a new word with a leading space; a piece written without one
is attached to the word before it (``" p" ".m."`` is "p.m.", ``" Wi" "-Fi."`` is "Wi-Fi.").
:class:`~asr.types.Word` keeps that mark (``leading_space``) so :func:`join_words` rebuilds
the text faster-whisper prints, instead of "p .m." and "Wi -Fi." (which the WER normaliser
scores as two words and the entity patterns miss).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from asr.types import Word

__all__ = ["from_pieces", "join_words"]


def from_pieces(pieces: Iterable[tuple[str, float, float, float]]) -> list[Word]:
    """Words from Whisper's word pieces ``(text with its leading space, start, end, probability)``
    after its own punctuation merging.

    A piece with no letter or digit is no word: written attached (``"%"`` after ``" 40"``) it
    joins the previous word's text; written apart it is dropped. measured: a SpokenWOZ final
    ended in five ``" ."`` pieces ("in total. . . . . ."), each of which became a word; the
    loop guard counts only words, so it let them through.
    """
    words: list[Word] = []
    for text, start, end, probability in pieces:
        stripped = text.strip()
        if not stripped:
            continue
        spaced = text[0].isspace()
        if not any(c.isalnum() for c in stripped):
            if words and not spaced:
                last = words[-1]
                words[-1] = replace(last, text=last.text + stripped, end=max(last.end, end))
            continue
        words.append(Word(stripped, start, end, probability, leading_space=spaced))
    return words


def join_words(words: Sequence[Word]) -> str:
    """The text of ``words`` as Whisper wrote it: a space only before words that had one."""
    return "".join((" " if w.leading_space else "") + w.text for w in words if w.text).strip()
