"""Word-level helpers shared by dedup (which words does a new memory add?) and keyword search."""

from __future__ import annotations

import re

# Words that carry no meaning of their own in a memory or a question. Kept short on purpose: a word
# missing here only costs a little keyword precision, a word wrongly here can hide a real match.
STOP_WORDS = frozenset(
    """
    a about after again all also am an and any are as at be been before being but by can could did do
    does doing for from had has have having he her here hers him his how i if in into is it its me more
    most my myself no nor not of on once only or other our ours out over own same she should so some such
    than that the their them then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours
    """.split()  # noqa: SIM905 (a word list reads better as a paragraph)
)

_WORD = re.compile(r"\w+(?:[-'.@/]\w+)*", re.UNICODE)
MAX_QUERY_TERMS = 32


def words(text: str) -> list[str]:
    """The words of ``text``, casefolded; joined tokens such as ORD-48213 or a.b@c.io stay whole."""
    return [w.casefold() for w in _WORD.findall(text)]


def content_words(text: str) -> set[str]:
    return {w for w in words(text) if w not in STOP_WORDS}


def keyword_terms(text: str) -> list[str]:
    """The distinct words worth matching on, in order of appearance, at most ``MAX_QUERY_TERMS``.

    Falls back to all words when the text is only stop words, so "who am I" still matches something.
    """
    all_words = list(dict.fromkeys(words(text)))
    meaningful = [w for w in all_words if w not in STOP_WORDS] or all_words
    return meaningful[:MAX_QUERY_TERMS]
