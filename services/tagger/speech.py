"""Who speaks: delegates taking the floor, officials answering, people only named.

Council captions and lower-thirds say it in a few fixed shapes:

- "Đại biểu Nguyễn Văn Hùng phát biểu / thảo luận / chất vấn / đặt câu hỏi …" → speaks;
- "Giám đốc Sở Y tế Lê Văn Bình trả lời chất vấn của đại biểu Trần Thị Mỹ Hạnh"
  → Lê Văn Bình answers (not a delegate's speech), Trần Thị Mỹ Hạnh speaks;
- "Các đại biểu A, B và C thảo luận …" → each of them speaks;
- a clip's lower-third "ĐB NGUYỄN QUỐC VIỆT / Tổ đại biểu huyện Ninh Sơn" → the
  person on screen speaks;
- "Đồng chí Phạm Văn Hậu … chủ trì / dự / thăm …" → named, appears.

A person is found by the people registry (folded: with or without diacritics)
or, when not registered, as a run of capitalised words introduced by a title
(đại biểu, ĐB, đồng chí, ông, bà, giám đốc, chủ tịch …). What they do is the
first verb after the name in the same clause; without one, a "chất vấn của …"
/ "trả lời chất vấn của …" before the name decides. Each recognition keeps the
words it came from (evidence, with offsets into the text) and a confidence.
Pure functions: measured on ``tests/data/speech_eval*.tsv``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.events.speech import SpeechKind, SpeechRole, SpeechSource, SpeechTag
from shared.people import Registry, name_key
from shared.text import fold, nfc

_WORD = re.compile(r"[^\W\d_]+")
# Clauses: a verb speaks for the names of its own clause only.
_CLAUSE_END = re.compile(r"(?<![Tt][Pp])(?<![Tt][Xx])[.;!?\n]+|(?<=[Tt][Pp])[;!?\n]+|(?<=[Tt][Xx])[;!?\n]+")
_LOWER_THIRD_PARTS = re.compile(r"\s[-–]\s|,|\|")

# Titles that introduce a person (folded word sequences).
_TITLES = tuple(
    t.split()
    for t in (
        "dai bieu",
        "db",
        "dbqh",
        "dong chi",
        "d c",  # đ/c
        "ong",
        "ba",
        "giam doc",
        "chu tich",
        "truong ban",
        "bi thu",
        "chanh van phong",
        "chanh an",
        "vien truong",
        "thu truong",
        "to truong",
        "truong phong",
        "chu nhiem",
        "tong bien tap",
    )
)
# Words that are never part of a name (as written, lowercase); they break a run of capitals.
_NEVER_NAME = frozenset(
    "đại biểu đb đbqh tổ hđnd ubnd mttq ubmttq sở ban bộ giám đốc chủ tịch phó trưởng huyện tỉnh xã phường "
    "trấn quận phố kỳ họp hội và với của tại tp khóa khoá phiên đoàn phòng ủy uỷ viên bí chánh thường "
    "trực đồng chí ông bà các cử tri kinh tế ngân sách pháp chế thôn ấp khu".split()
)
# The same, for text typed without diacritics: only words that cannot be a name part folded.
_NEVER_NAME_FOLDED = frozenset(
    "dai bieu db dbqh hdnd ubnd mttq giam doc tich huyen tinh ky hop hoi va voi cua tai tp phien khoa thon".split()
)
# A run right after one of these is a place or an organisation ("huyện Ninh Sơn", "Sở Công Thương").
_PLACE_OR_ORGAN = frozenset(
    "huyện tỉnh xã phường quận thị trấn phố thôn ấp tp tx sở ban bộ tổ hội đài báo đoàn cục "
    "huyen tinh xa phuong quan thi tran pho thon ap so bo to doan cuc".split()
)
# Common Vietnamese surnames (and those of the province's Chăm and Raglai delegates): an
# unregistered name after a title must begin with one, unless it follows the title at once.
_SURNAMES = frozenset(
    fold(s)
    for s in (
        "Nguyễn Trần Lê Phạm Hoàng Huỳnh Phan Vũ Võ Đặng Bùi Đỗ Hồ Ngô Dương Lý Đinh Đào Đoàn Vương Trịnh "
        "Trương Lâm Lưu Mai Tô Hà Cao Châu Thái Tạ Quách Kiều Lương La Chu Từ Thân Hứa Triệu Tăng Nông Lò "
        "Mạc Khúc Âu Văn Giang Kim Tôn Ông Doãn Đàm Lại Mẫn Phùng Quan Lã Đạo Bá Thuận Pi Katơr Chamaléa Mang "
        "Pinăng Ka Y H Nay Siu Rơ Ma Thạch Danh Sơn Trà Ưng"
    ).split()
)


@dataclass(frozen=True)
class _Verb:
    words: tuple[str, ...]
    role: SpeechRole
    kind: SpeechKind


def _verbs(role: SpeechRole, pairs: dict[str, SpeechKind]) -> list[_Verb]:
    return [_Verb(tuple(p.split()), role, kind) for p, kind in pairs.items()]


_VERBS = sorted(
    [
        *_verbs(
            "speaks",
            {
                "phat bieu thao luan": "thao-luan",
                "phat bieu y kien": "phat-bieu",
                "phat bieu": "phat-bieu",
                "thao luan": "thao-luan",
                "tranh luan": "thao-luan",
                "gop y": "thao-luan",
                "tham gia y kien": "thao-luan",
                "tham gia thao luan": "thao-luan",
                "neu y kien": "thao-luan",
                "chat van": "chat-van",
                "dat cau hoi": "chat-van",
                "neu cau hoi": "chat-van",
                "de nghi": "phat-bieu",
                "kien nghi": "phat-bieu",
                "tham luan": "phat-bieu",
            },
        ),
        *_verbs(
            "answers",
            {
                "tra loi chat van": "tra-loi",
                "tra loi": "tra-loi",
                "giai trinh": "tra-loi",
                "tiep thu": "tra-loi",
            },
        ),
        *_verbs(
            "appears",
            {
                "chu tri": "",
                "dieu hanh": "",
                "du": "",
                "tham du": "",
                "tiep xuc": "",
                "tiep cong dan": "",
                "tham": "",
                "tang": "",
                "trao": "",
                "lam viec": "",
                "kiem tra": "",
                "khao sat": "",
                "chuc mung": "",
                "chup anh": "",
                "giam sat": "",
                "gom": "",
                "dan dau": "",
                "lang nghe": "",
                "chu toa": "",
            },
        ),
    ],
    key=lambda v: -len(v.words),
)
# Words after which a short verb is something else: "dự thảo", "dự án", "thăm gia" …
_NOT_A_VERB_AFTER: dict[tuple[str, ...], frozenset[str]] = {
    ("du",): frozenset({"thao", "an", "kien", "toan", "bao", "tru", "phong", "dinh", "thi"}),
    ("tham",): frozenset({"gia", "du", "luan", "muu", "quan", "nien", "my"}),
    ("tang",): frozenset({"cuong", "truong", "thu"}),
    ("gom",): frozenset(),
}
# Nouns made of verbs: "phiên chất vấn", "buổi tiếp xúc" name a sitting, not an act.
_NOUN_HEADS = frozenset({"phien", "buoi", "cuoc", "noi", "hoi"})
# "… chất vấn của [các đại biểu] X": the act, then whose it was.
_ACT_OF: list[tuple[tuple[str, ...], SpeechRole, SpeechKind]] = sorted(
    [
        (("tra", "loi", "chat", "van", "cua"), "answers", "tra-loi"),
        (("tra", "loi", "cua"), "answers", "tra-loi"),
        (("giai", "trinh", "cua"), "answers", "tra-loi"),
        (("chat", "van", "cua"), "speaks", "chat-van"),
        (("cau", "hoi", "cua"), "speaks", "chat-van"),
        (("y", "kien", "cua"), "speaks", "thao-luan"),
        (("phat", "bieu", "cua"), "speaks", "phat-bieu"),
        (("kien", "nghi", "cua"), "speaks", "phat-bieu"),
        (("tham", "luan", "cua"), "speaks", "phat-bieu"),
    ],
    key=lambda a: -len(a[0]),
)
_GROUP_SETTING = re.compile(r"(?<![a-z])(thao luan (tai |o )?to|tai to)(?![a-z])")
_ROLE_RANK = {"speaks": 3, "answers": 2, "appears": 1}
_TITLE_WINDOW = 10  # words between a title and the name it introduces (role, organisation)


@dataclass(frozen=True)
class _Token:
    text: str
    folded: str
    start: int
    end: int


@dataclass(frozen=True)
class _Mention:
    first: int  # token indices within the clause, [first, last)
    last: int
    name: str
    person_id: str | None
    known: bool


def _tokens(text: str, folded: str, start: int, end: int) -> list[_Token]:
    return [
        _Token(m.group(), folded[m.start() : m.end()], m.start(), m.end()) for m in _WORD.finditer(text, start, end)
    ]


def _capitalised(word: str) -> bool:
    return word[:1].isupper()


def _never_name(word: str, folded: str) -> bool:
    low = word.lower()
    return low in _NEVER_NAME or (low == folded and folded in _NEVER_NAME_FOLDED)


def _runs(text: str, toks: list[_Token]) -> list[tuple[int, int]]:
    """Runs of capitalised words joined only by spaces (2–5 words), as token ranges."""
    runs: list[tuple[int, int]] = []
    i = 0
    while i < len(toks):
        if not _capitalised(toks[i].text) or _never_name(toks[i].text, toks[i].folded):
            i += 1
            continue
        j = i + 1
        while (
            j < len(toks)
            and j - i < 5
            and _capitalised(toks[j].text)
            and not _never_name(toks[j].text, toks[j].folded)
            and not text[toks[j - 1].end : toks[j].start].strip()
        ):
            j += 1
        if j - i >= 2:
            runs.append((i, j))
        i = j
    return runs


def _title_before(toks: list[_Token], first: int) -> int | None:
    """How many words back the nearest title ends (0: right before ``first``), within the window."""
    folded = [t.folded for t in toks]
    for back in range(0, min(first, _TITLE_WINDOW) + 1):
        end = first - back
        for title in _TITLES:
            if end >= len(title) and tuple(folded[end - len(title) : end]) == tuple(title):
                return back
    return None


def _display(run_text: str) -> str:
    """A name as people write it: "NGUYỄN QUỐC VIỆT" → "Nguyễn Quốc Việt"."""
    words = run_text.split()
    if all(w.isupper() for w in words):
        return " ".join(w[:1] + w[1:].lower() for w in words)
    return " ".join(words)


def _unregistered_name(text: str, toks: list[_Token], first: int, last: int, lower_third: bool) -> int | None:
    """Where a run of capitals not in the registry starts being a person's name, if it is one."""
    prev = toks[first - 1].text.lower() if first > 0 else ""
    if prev in _PLACE_OR_ORGAN or fold(prev) in _PLACE_OR_ORGAN:
        # "tỉnh Trần Quốc Nam" (the official's own province left out) is a name;
        # "huyện Ninh Sơn", "Sở Công Thương Nguyễn Hữu Thắng": the name, if any, starts at a surname.
        if fold(prev) == "tinh" and toks[first].folded in _SURNAMES:
            start_at = first
        else:
            start_at = next((k for k in range(first + 1, last - 1) if toks[k].folded in _SURNAMES), -1)
            if start_at < 0:
                return None
    elif toks[first].folded in _SURNAMES:
        start_at = first
    else:  # "PTNT Huỳnh Tấn Phát": an acronym or organisation word ahead of the name
        start_at = next((k for k in range(first + 1, last - 1) if toks[k].folded in _SURNAMES), first)
    back = _title_before(toks, start_at)
    if back is None and lower_third:
        back = _TITLE_WINDOW if toks[start_at].folded in _SURNAMES else None
    if back is None:
        return None
    if toks[start_at].folded in _SURNAMES or back == 0:
        return start_at
    return None


def _registered(toks: list[_Token], registry: Registry) -> list[tuple[int, int]]:
    """Token ranges of registry names said in the clause (folded: any spelling)."""
    found: list[tuple[int, int]] = []
    folded = [t.folded for t in toks]
    for key in registry.keys():
        words = key.split()
        n = len(words)
        if n < 2:
            continue
        for i in range(len(folded) - n + 1):
            if folded[i : i + n] == words:
                # Two-word names are common words too often: only after a title.
                if n >= 3 or _title_before(toks, i) is not None:
                    found.append((i, i + n))
    return found


def _mentions(text: str, toks: list[_Token], registry: Registry, lower_third: bool) -> list[_Mention]:
    taken: set[int] = set()
    out: list[_Mention] = []
    for first, last in sorted(_registered(toks, registry), key=lambda r: (r[0], -(r[1] - r[0]))):
        if taken & set(range(first, last)):
            continue
        spoken = " ".join(t.text for t in toks[first:last])
        person = registry.lookup(spoken)
        assert person is not None
        out.append(_Mention(first, last, person.name, person.person_id, True))
        taken |= set(range(first, last))
    for first, last in _runs(text, toks):
        if taken & set(range(first, last)):
            continue
        start_at = _unregistered_name(text, toks, first, last, lower_third)
        if start_at is None or last - start_at < 2:
            continue
        name = _display(" ".join(t.text for t in toks[start_at:last]))
        person = registry.lookup(name)
        pid = person.person_id if person is not None else None
        out.append(_Mention(start_at, last, person.name if person else name, pid, person is not None))
        taken |= set(range(start_at, last))
    return sorted(out, key=lambda m: m.first)


def _verb_at(folded: list[str], i: int) -> _Verb | None:
    if i > 0 and folded[i - 1] in _NOUN_HEADS:
        return None
    if i > 1 and (folded[i - 2], folded[i - 1]) in {("noi", "dung"), ("hoi", "nghi")}:
        return None
    for verb in _VERBS:
        n = len(verb.words)
        if tuple(folded[i : i + n]) != verb.words:
            continue
        blocked = _NOT_A_VERB_AFTER.get(verb.words)
        if blocked is not None and i + n < len(folded) and folded[i + n] in blocked:
            continue
        return verb
    return None


def _next_verb(folded: list[str], after: int, mentions: list[_Mention]) -> tuple[_Verb, int] | None:
    inside = {k for m in mentions for k in range(m.first, m.last)}
    i = after
    while i < len(folded):
        if i not in inside:
            verb = _verb_at(folded, i)
            if verb is not None:
                return verb, i + len(verb.words)
        i += 1
    return None


def _act_before(folded: list[str], first: int, mentions: list[_Mention]) -> tuple[SpeechRole, SpeechKind] | None:
    """A "chất vấn của …" / "trả lời chất vấn của …" before the name with no verb in between.

    "Phần trả lời chất vấn của <X>": X answers; but "<Y> trả lời chất vấn của <X>"
    has its answerer already (Y): X is the one who asked.
    """
    for end in range(first, 0, -1):
        for words, role, kind in _ACT_OF:
            n = len(words)
            if end >= n and tuple(folded[end - n : end]) == words:
                act_start = end - n
                if role == "answers" and any(
                    m.last <= act_start
                    and (found := _next_verb(folded, m.last, mentions)) is not None
                    and found[1] - 1 >= act_start
                    for m in mentions
                ):
                    return "speaks", "chat-van"
                return role, kind
        verb = _verb_at(folded, end - 1) if end < first else None
        if verb is not None and verb.role != "appears":
            return None  # "… chất vấn Giám đốc Sở …": a verb between, so not whose act it was
    return None


def _clauses(text: str, lower_third: bool) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in _CLAUSE_END.finditer(text):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, len(text)))
    if lower_third:
        parts: list[tuple[int, int]] = []
        for a, b in spans:
            p = a
            for m in _LOWER_THIRD_PARTS.finditer(text, a, b):
                parts.append((p, m.start()))
                p = m.end()
            parts.append((p, b))
        spans = parts
    return [(a, b) for a, b in spans if text[a:b].strip()]


def _evidence(text: str, start: int, end: int) -> str:
    return " ".join(text[start:end].split())[:300]


def find_speeches(text: str, registry: Registry, source: SpeechSource = "caption") -> list[SpeechTag]:
    """Everyone a caption, title or lower-third names, with what they do in it.

    One recognition per person (the strongest: speaks > answers > appears).
    """
    text = nfc(text)
    folded_text = fold(text)
    lower_third = source == "lower_third"
    best: dict[str, SpeechTag] = {}
    for a, b in _clauses(text, lower_third):
        toks = _tokens(text, folded_text, a, b)
        if not toks:
            continue
        folded = [t.folded for t in toks]
        mentions = _mentions(text, toks, registry, lower_third)
        setting = "group" if _GROUP_SETTING.search(folded_text, a, b) else ""
        for m in mentions:
            role: SpeechRole = "appears"
            kind: SpeechKind = ""
            span_end = toks[m.last - 1].end
            confidence = 0.8 if m.known else 0.7
            found = _next_verb(folded, m.last, mentions)
            after = text[toks[m.last - 1].end : b].lstrip()
            if after.startswith(":"):
                role, kind, confidence = "speaks", "phat-bieu", 0.85  # "Đại biểu X: «…»"
            elif found is not None and found[0].role != "appears":
                verb, verb_end = found
                role, kind = verb.role, verb.kind
                span_end = toks[verb_end - 1].end
                confidence = 0.95 if m.known else 0.85
            elif found is None and (act := _act_before(folded, m.first, mentions)) is not None:
                role, kind = act
                confidence = 0.85 if m.known else 0.75
            elif lower_third and found is None:
                # The person a clip's lower-third names is the one on screen, talking.
                role, kind, confidence = "speaks", "phat-bieu", 0.7
            tag = SpeechTag(
                name=m.name,
                person_id=m.person_id,
                known=m.known,
                role=role,
                kind=kind,
                setting=setting if role == "speaks" else "",
                source=source,
                evidence=_evidence(text, a, max(span_end, b if role == "appears" else span_end)),
                start=toks[m.first].start,
                end=span_end,
                confidence=confidence,
            )
            key = name_key(m.name)
            held = best.get(key)
            if held is None or _ROLE_RANK[tag.role] > _ROLE_RANK[held.role]:
                best[key] = tag
    return list(best.values())


def merge_speeches(*lists: list[SpeechTag]) -> list[SpeechTag]:
    """Recognitions from several texts of one asset (title, caption, on-screen text): one per person."""
    best: dict[str, SpeechTag] = {}
    for tags in lists:
        for tag in tags:
            key = name_key(tag.name)
            held = best.get(key)
            if held is None or (_ROLE_RANK[tag.role], tag.confidence) > (_ROLE_RANK[held.role], held.confidence):
                best[key] = tag
    return list(best.values())
