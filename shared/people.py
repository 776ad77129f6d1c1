"""People: the registry of delegates and officials, and names found in text.

Captions name people the way council news does: "Đồng chí Nguyễn Hải Long, Ủy
viên BCH Đảng bộ tỉnh, Phó Trưởng Ban Tuyên giáo Tỉnh ủy phát biểu…". Names
are matched on their folded form, so "Nguyen Hai Long", an NFD-encoded
"Nguyễn Hải Long" and the registry's spelling are one person. An unknown
"Đồng chí …" is proposed as a new person rather than dropped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

from shared.events.tagging import PersonTag
from shared.text import clean_text, fold, nfc

# Honorifics that introduce a name in captions (folded).
_HONORIFIC = re.compile(r"(?<![a-z0-9])(dong chi|d/c|dc|ong|ba)\s+", re.IGNORECASE)
_LIST_INTRO = re.compile(r"cac dong chi\s*:?\s*")
_WORD = re.compile(r"[^\W\d_]+")
_ROLE_WORD = re.compile(r"[^\W_]+")
# A role ends where the sentence goes on with what the person did.
_ROLE_STOPS = tuple(
    tuple(s.split())
    for s in (
        "phat bieu",
        "chu tri",
        "bao cao ket qua",
        "bao cao tai",
        "trao",
        "tang",
        "tham",
        "lam viec",
        "tai",
        "thao luan",
        "kiem tra",
        "du",
        "khai mac",
        "be mac",
        "trinh bay",
        "giai trinh",
        "tra loi",
        "chat van",
        "dieu hanh",
        "ket luan",
        "gap",
        "cung",
        "de nghi",
        "nhan manh",
        "chuc mung",
        "trao doi",
        "ghi nhan",
        "lang nghe",
        "doc",
        "neu",
        "yeu cau",
        "chi dao",
        "tiep thu",
        "nghe",
        "va dong chi",
        "la",
        "da",
        "dang",
        "se",
        "cho biet",
        "khang dinh",
        "thong tin",
        "tiep xuc",
        "tiep cong dan",
        "giam sat",
        "dong chi",
        "ve viec",
        "ve",
        "trong",
        "voi",
        "tu",
        "den",
        "chup anh",
        "thay mat",
    )
)
_ROLE_END = re.compile(r"[.;:()\n\[\]]|\s[-–]\s(?=\S)")
_MAX_NAME_WORDS = 5
_MAX_ROLE_WORDS = 20


@dataclass(frozen=True)
class Person:
    person_id: str
    name: str
    role: str = ""
    organ: str = ""
    term: str | None = None

    @property
    def key(self) -> str:
        return name_key(self.name)


def name_key(name: str) -> str:
    """The identity of a spelled name: folded, single-spaced."""
    return " ".join(_WORD.findall(fold(name)))


def person_id_for(name: str) -> str:
    """A stable id for a person known only by name (subject-token safe)."""
    return "p" + hashlib.sha256(name_key(name).encode()).hexdigest()[:20]


class Registry:
    """Known people by folded name; several people may share a folded name."""

    def __init__(self, people: Iterable[Person] = ()) -> None:
        self._by_key: dict[str, list[Person]] = {}
        self._by_id: dict[str, Person] = {}
        for person in people:
            self.add(person)

    def add(self, person: Person) -> None:
        if person.person_id in self._by_id:
            return
        self._by_id[person.person_id] = person
        self._by_key.setdefault(person.key, []).append(person)

    def __len__(self) -> int:
        return len(self._by_id)

    def all(self) -> list[Person]:
        return list(self._by_id.values())

    def get(self, person_id: str) -> Person | None:
        return self._by_id.get(person_id)

    def lookup(self, name: str) -> Person | None:
        """The registered person with this name, preferring the exact spelling."""
        candidates = self._by_key.get(name_key(name), [])
        for person in candidates:
            if person.name == clean_text(name):
                return person
        return candidates[0] if candidates else None

    def keys(self) -> list[str]:
        return list(self._by_key)


def parse_people_csv(text: str) -> list[Person]:
    """Rows ``person_id,name,role,organ,term`` (person_id and the rest optional)."""
    rows = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if rows.fieldnames is None or "name" not in [f.strip() for f in rows.fieldnames]:
        raise ValueError("CSV must have a header row with at least a 'name' column")
    people = []
    for row in rows:
        row = {k.strip(): (v or "") for k, v in row.items() if k}
        name = clean_text(row.get("name"))
        if not name:
            continue
        pid = (row.get("person_id") or "").strip() or person_id_for(name)
        people.append(
            Person(
                pid,
                name,
                clean_text(row.get("role")),
                clean_text(row.get("organ")),
                (row.get("term") or "").strip() or None,
            )
        )
    return people


def bundled_registry() -> Registry:
    """The registry shipped with the code (``shared/data/people.csv``): the production
    starting point, to which ``person.registered`` events from the log are added."""
    text = resources.files("shared").joinpath("data/people.csv").read_text("utf-8")
    return Registry(parse_people_csv(text))


def _capitalised(word: str) -> bool:
    return word[:1].isupper() and (len(word) == 1 or not word[1:].isupper() or len(word) <= 2)


def _read_name(text: str, pos: int) -> tuple[str, int]:
    """Consecutive capitalised words from ``pos`` (2–5 of them), and where they end."""
    words: list[str] = []
    end = pos
    for m in _WORD.finditer(text, pos):
        gap = text[end : m.start()]
        if gap.strip() or not _capitalised(m.group()):
            break
        if words and "\n" in gap:
            break
        words.append(m.group())
        end = m.end()
        if len(words) == _MAX_NAME_WORDS:
            break
    if len(words) < 2:
        return "", pos
    return " ".join(words), end


def _read_role(text: str, pos: int) -> str:
    """The role after "Name, " or "Name - ", up to punctuation or a verb."""
    m = re.match(r"\s*[,–-]\s*", text[pos:])
    if not m:
        return ""
    start = pos + m.end()
    stop = _ROLE_END.search(text, start)
    segment = text[start : stop.start() if stop else len(text)]
    words = list(_ROLE_WORD.finditer(segment))
    folded = [fold(w.group()) for w in words]
    cut = len(words)
    for i in range(len(words)):
        if i == 0:
            continue
        after_comma = "," in segment[words[i - 1].end() : words[i].start()]
        if after_comma and not words[i].group()[:1].isupper():
            cut = i  # "…, lãnh đạo các Ban": the list of roles is over
            break
        if any(tuple(folded[i : i + len(s)]) == s for s in _ROLE_STOPS) and not words[i].group()[:1].isupper():
            cut = i
            break
        if i >= _MAX_ROLE_WORDS:
            cut = i
            break
    if cut == 0 or not words:
        return ""
    role = segment[: words[cut - 1].end()]
    return clean_text(role).strip(" ,-–")


def _mentions(text: str) -> list[tuple[str, str]]:
    """(name, role) for every "Đồng chí/đ/c/Ông/Bà <Name>[, role]" and "các đồng chí: A, role; B, role"."""
    out: list[tuple[str, str]] = []
    folded = fold(text)  # same length as text (NFC)
    for m in _HONORIFIC.finditer(folded):
        name, end = _read_name(text, m.end())
        if name:
            out.append((name, _read_role(text, end)))
    for m in _LIST_INTRO.finditer(folded):
        stop = re.search(r"[.\n]", text[m.end() :])
        block = text[m.end() : m.end() + stop.start() if stop else len(text)]
        offset = m.end()
        for part in block.split(";"):
            lead = len(part) - len(part.lstrip(" ,"))
            name, end = _read_name(text, offset + lead)
            if name:
                out.append((name, _read_role(text, end)))
            offset += len(part) + 1
    return out


def find_people(text: str, registry: Registry, source: str = "caption") -> list[PersonTag]:
    """People in a caption or OCR text: honorific mentions plus registry names said plainly."""
    text = nfc(text)
    found: dict[str, PersonTag] = {}
    for name, role in _mentions(text):
        key = name_key(name)
        known = registry.lookup(name)
        if known is not None:
            tag = PersonTag(
                name=known.name, role=role or known.role, person_id=known.person_id, known=True, source=source
            )
        else:
            tag = PersonTag(name=name, role=role, person_id=None, known=False, source=source)
        if key not in found or (tag.role and not found[key].role):
            found[key] = tag
    padded = " " + " ".join(_WORD.findall(fold(text))) + " "
    for key in registry.keys():
        if key in found or len(key.split()) < 3:
            continue
        if f" {key} " in padded:
            person = registry.lookup(key)
            assert person is not None
            found[key] = PersonTag(
                name=person.name, role=person.role, person_id=person.person_id, known=True, source=source
            )
    return list(found.values())
