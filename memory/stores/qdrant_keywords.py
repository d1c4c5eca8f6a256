"""The keyword side of the Qdrant store: text -> terms -> a sparse vector, computed here, never downloaded.

The other stores stem (SQLite's FTS5 ``porter`` tokenizer, Postgres's ``english`` parser), so "trains"
finds "train" and "preference" finds "prefer". Qdrant's full-text index can stem only on a server
(local mode has no stemmer), so the terms are made here, the same way for local mode and a server:
``memory.text.words``, accents removed, then Martin Porter's algorithm, the one FTS5 implements (a test
holds ``stem`` equal to FTS5's). A joined token such as ORD-48213 or a.b@c.io stays one term, unstemmed;
a document also indexes its parts, so "Okonkwo" finds "Okonkwo-Haralds" but "ORD-48213" finds no other
order number. Each term is hashed to a stable sparse index (the first 4 bytes of its SHA-1); Qdrant's
``Modifier.IDF`` then weighs query terms by inverse document frequency, so the score is BM25-like.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections import Counter

from memory import text

_JOINED = re.compile(r"[-'.@/]")
_PARTS = re.compile(r"[^\W_]+")


def _consonant(word: str, i: int) -> bool:
    if word[i] in "aeiou":
        return False
    return word[i] != "y" or i == 0 or not _consonant(word, i - 1)


def _measure(stem: str) -> int:
    """Porter's m: the number of vowel-consonant sequences in ``stem``."""
    pattern = "".join("c" if _consonant(stem, i) else "v" for i in range(len(stem)))
    return len(re.findall("v+c+", pattern))


def _has_vowel(stem: str) -> bool:
    return any(not _consonant(stem, i) for i in range(len(stem)))


def _double(word: str) -> bool:
    return len(word) >= 2 and word[-1] == word[-2] and _consonant(word, len(word) - 1)


def _cvc(word: str) -> bool:
    n = len(word)
    return (
        n >= 3
        and _consonant(word, n - 3)
        and not _consonant(word, n - 2)
        and _consonant(word, n - 1)
        and word[-1] not in "wxy"
    )


# Steps 2 to 4: the first suffix that ends the word decides, replaced when the stem's measure is enough.
_STEP2 = (
    ("ational", "ate"), ("tional", "tion"), ("enci", "ence"), ("anci", "ance"), ("izer", "ize"),
    ("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous"), ("ization", "ize"),
    ("ation", "ate"), ("ator", "ate"), ("alism", "al"), ("iveness", "ive"), ("fulness", "ful"),
    ("ousness", "ous"), ("aliti", "al"), ("iviti", "ive"), ("biliti", "ble"), ("logi", "log"),
)  # fmt: skip
_STEP3 = (
    ("icate", "ic"), ("ative", ""), ("alize", "al"), ("iciti", "ic"), ("ical", "ic"), ("ful", ""), ("ness", ""),
)  # fmt: skip
_STEP4 = (
    "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ion", "ou", "ism", "ate",
    "iti", "ous", "ive", "ize",
)  # fmt: skip


def _replace(word: str, rules: tuple[tuple[str, str], ...], min_measure: int) -> str:
    for suffix, replacement in rules:
        if word.endswith(suffix):
            stem = word[: -len(suffix)]
            return stem + replacement if _measure(stem) >= min_measure else word
    return word


def _step1(word: str) -> str:
    if (word.endswith("sses") and len(word) > 4) or (word.endswith("ies") and len(word) > 3):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    if word.endswith("eed") and len(word) > 3:
        return word[:-1] if _measure(word[:-3]) > 0 else word
    for suffix in ("ed", "ing"):
        if word.endswith(suffix) and _has_vowel(word[: -len(suffix)]):
            word = word[: -len(suffix)]
            if word.endswith(("at", "bl", "iz")):
                word += "e"
            elif _double(word) and word[-1] not in "lsz":
                word = word[:-1]
            elif _measure(word) == 1 and _cvc(word):
                word += "e"
            break
    if word.endswith("y") and _has_vowel(word[:-1]):
        word = word[:-1] + "i"
    return word


def stem(word: str) -> str:
    """Porter's stem of a lowercase word: "trains" -> "train", "preference" -> "prefer"."""
    if len(word) < 3:
        return word
    word = _replace(_replace(_step1(word), _STEP2, 1), _STEP3, 1)
    for suffix in _STEP4:
        if word.endswith(suffix):
            stem_ = word[: -len(suffix)]
            if _measure(stem_) > 1 and (suffix != "ion" or stem_.endswith(("s", "t"))):
                word = stem_
            break
    if word.endswith("e"):
        measure = _measure(word[:-1])
        if measure > 1 or (measure == 1 and not _cvc(word[:-1])):
            word = word[:-1]
    if word.endswith("ll") and _measure(word) > 1:
        word = word[:-1]
    return word


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def term(word: str) -> str:
    """A word as the index knows it: accents removed, stemmed unless it is a joined token."""
    word = _fold(word)
    return word if _JOINED.search(word) else stem(word)


def document_terms(content: str) -> list[str]:
    """Every term of a memory, repeated as often as it occurs: each word, and the parts of joined ones."""
    terms: list[str] = []
    for word in text.words(content):
        terms.append(term(word))
        if _JOINED.search(word):
            terms.extend(stem(part) for part in _PARTS.findall(_fold(word)))
    return terms


def query_terms(query: str) -> list[str]:
    """The query's ``memory.text.keyword_terms``, as terms: a memory matches when it has any of them."""
    return list(dict.fromkeys(term(word) for word in text.keyword_terms(query)))


def index(term_: str) -> int:
    """A stable sparse index for a term: the same in every process and every version of Python."""
    return int.from_bytes(hashlib.sha1(term_.encode("utf-8")).digest()[:4], "big")


def sparse(terms: list[str], *, saturate: bool) -> tuple[list[int], list[float]]:
    """Sorted indices and their weights: ``1 + ln(tf)`` for a document, 1.0 per term for a query."""
    counts = Counter(index(t) for t in terms)
    indices = sorted(counts)
    return indices, [1.0 + math.log(counts[i]) if saturate else 1.0 for i in indices]
