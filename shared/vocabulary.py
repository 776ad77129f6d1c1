"""The controlled vocabulary and the activity-type classifier built on it.

The vocabulary is data (``shared/data/vocabulary.json``) so archivists can tune
it without code; the classifier lives in ``shared`` because the tagger service
and the ``mam classify`` CLI both use it. It is deliberately explainable: every
proposal carries the phrases that produced it, so the UI can say why.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from shared.taxonomy import ACTIVITY_TYPE_CODES, activity_types
from shared.text import fold, nfc

FALLBACK_TYPE = "khac"
_WORD = re.compile(r"[a-z0-9]+")
# Confidence = winning score / (all scores + smoothing): one weak phrase alone
# should not look certain.
_SMOOTHING = 2.0


@dataclass(frozen=True)
class Phrase:
    text: str  # NFC, as written in the vocabulary
    tokens: tuple[str, ...]  # folded words
    activity_type: str | None  # None: an "ignore" phrase, consumed without scoring
    weight: float
    exact: bool = False  # folded form is ambiguous (thăm/tham/thẩm): require diacritics to match


@dataclass(frozen=True)
class Organisation:
    code: str
    label_vi: str
    kind: str  # "organ" (of the council) or "partner"
    alias_tokens: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Vocabulary:
    version: str
    phrases: tuple[Phrase, ...]  # longest first
    organisations: tuple[Organisation, ...]


@dataclass(frozen=True)
class MatchedPhrase:
    phrase: str
    activity_type: str
    weight: float


@dataclass(frozen=True)
class Classification:
    activity_type: str
    confidence: float
    matched: tuple[MatchedPhrase, ...]
    scores: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "activity_type": self.activity_type,
            "confidence": self.confidence,
            "matched_phrases": [m.phrase for m in self.matched if m.activity_type == self.activity_type],
            "all_matches": [
                {"phrase": m.phrase, "activity_type": m.activity_type, "weight": m.weight} for m in self.matched
            ],
            "scores": self.scores,
        }


def tokens_of(text: str) -> tuple[str, ...]:
    """Folded words: punctuation and diacritics do not matter to matching."""
    return tuple(_WORD.findall(fold(text)))


def _tokens_with_spans(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    folded = fold(text)  # same length as nfc(text), character for character
    found = list(_WORD.finditer(folded))
    return [m.group() for m in found], [m.span() for m in found]


def parse_vocabulary(data: dict[str, Any]) -> Vocabulary:
    phrases: list[Phrase] = []
    for code, items in data["activity_phrases"].items():
        if code not in ACTIVITY_TYPE_CODES:
            raise ValueError(f"vocabulary names unknown activity type {code!r}")
        for item in items:
            text, weight = nfc(item[0]), float(item[1])
            exact = len(item) > 2 and item[2] == "exact"
            phrases.append(Phrase(text, tokens_of(text), code, weight, exact))
    for text in data.get("ignore", []):
        phrases.append(Phrase(nfc(text), tokens_of(text), None, 0.0))
    # Longest first; at equal length "ignore" phrases go first ("trước kỳ họp" before "kỳ họp thứ").
    phrases.sort(key=lambda p: (-len(p.tokens), p.activity_type is not None, -p.weight, p.text))
    orgs: list[Organisation] = []
    for kind, key in (("organ", "organs"), ("partner", "partners")):
        for item in data.get(key, []):
            aliases = tuple(sorted({tokens_of(a) for a in item["aliases"]}, key=lambda t: (-len(t), t)))
            orgs.append(Organisation(item["code"], nfc(item["label_vi"]), kind, aliases))
    return Vocabulary(str(data.get("version", "0")), tuple(phrases), tuple(orgs))


@cache
def load_vocabulary() -> Vocabulary:
    """The packaged vocabulary (cached: it is read once per process)."""
    text = resources.files("shared").joinpath("data/vocabulary.json").read_text("utf-8")
    return parse_vocabulary(json.loads(text))


def _accented(text: str) -> bool:
    """Was the text typed with Vietnamese diacritics (most is; some is not)?"""
    return any(ch.isalpha() and fold(ch) != ch.lower() for ch in text)


def _find(tokens: list[str], needle: tuple[str, ...], used: list[bool]) -> list[int]:
    n = len(needle)
    starts = []
    i = 0
    while i + n <= len(tokens):
        if tuple(tokens[i : i + n]) == needle and not any(used[i : i + n]):
            starts.append(i)
            i += n
        else:
            i += 1
    return starts


def classify(text: str, vocabulary: Vocabulary | None = None) -> Classification:
    """Propose an activity type for a caption, title or OCR text.

    Phrases match on folded whole words, longest first; a matched span is
    consumed so "giám sát chuyên đề" does not also count as "giám sát". Each
    distinct phrase adds its weight to its type once. No match → ``khac`` with
    confidence 0.
    """
    vocab = vocabulary or load_vocabulary()
    original = nfc(text)
    tokens, spans = _tokens_with_spans(original)
    accented = _accented(original)
    used = [False] * len(tokens)
    scores: dict[str, float] = {}
    matched: list[MatchedPhrase] = []
    for phrase in vocab.phrases:
        if not phrase.tokens:
            continue
        hits = _find(tokens, phrase.tokens, used)
        if phrase.exact and accented:
            want = phrase.text.lower()
            hits = [i for i in hits if original[spans[i][0] : spans[i + len(phrase.tokens) - 1][1]].lower() == want]
        if not hits:
            continue
        for i in hits:
            for j in range(i, i + len(phrase.tokens)):
                used[j] = True
        if phrase.activity_type is not None:
            scores[phrase.activity_type] = scores.get(phrase.activity_type, 0.0) + phrase.weight
            matched.append(MatchedPhrase(phrase.text, phrase.activity_type, phrase.weight))
    if not scores:
        return Classification(FALLBACK_TYPE, 0.0, (), {})
    # Ties go to the type listed first in the taxonomy ("khac" is last).
    order = {a.code: i for i, a in enumerate(activity_types())}
    best = max(scores, key=lambda c: (scores[c], -order[c]))
    confidence = round(scores[best] / (sum(scores.values()) + _SMOOTHING), 3)
    return Classification(best, confidence, tuple(matched), dict(sorted(scores.items())))


def find_organisations(text: str, vocabulary: Vocabulary | None = None) -> list[Organisation]:
    """Council organs and partner organisations named in the text, in vocabulary order."""
    vocab = vocabulary or load_vocabulary()
    tokens, _ = _tokens_with_spans(nfc(text))
    used = [False] * len(tokens)
    found: list[Organisation] = []
    candidates = sorted(
        ((alias, org) for org in vocab.organisations for alias in org.alias_tokens), key=lambda pair: -len(pair[0])
    )
    hit_codes: set[str] = set()
    for alias, org in candidates:
        for i in _find(tokens, alias, used):
            for j in range(i, i + len(alias)):
                used[j] = True
            hit_codes.add(org.code)
    for org in vocab.organisations:
        if org.code in hit_codes:
            found.append(org)
    return found
