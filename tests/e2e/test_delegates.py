"""Delegates against the real services: a generated term (delegates imported from CSV and
XLSX, sessions, captions the tagger reads) whose delegate report and checklist equal an
independent count; an archivist's correction winning over the tagger, also after a
re-tag; CSV/XLSX exports; names across time in search."""

from __future__ import annotations

import csv
import io
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from elasticsearch import AsyncElasticsearch
from openpyxl import Workbook, load_workbook

from shared.eventstore import EventStore
from shared.people import bundled_registry, person_id_for
from shared.settings import Settings
from tests.conftest import ARCHIVIST, AUTH, PRODUCER, async_wait_for, consumer_settled
from tests.search_corpus import ingested

pytestmark = pytest.mark.integration
TERM = "2026-2031"  # a term no other test records in
GROUPS = (
    "Tổ đại biểu huyện Ninh Hải",
    "Tổ đại biểu huyện Ninh Phước",
    "Tổ đại biểu huyện Thuận Bắc",
    "Tổ đại biểu huyện Bác Ái",
)
SURNAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Huỳnh", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Dương", "Trương")
MIDDLES = ("Văn", "Thị", "Minh", "Quốc", "Thanh", "Hữu", "Ngọc", "Đức")
GIVENS = ("Hùng", "Lan", "Tuấn", "Hạnh", "Khoa", "Mai", "Phúc", "Thảo", "Long", "Vy", "Sơn", "Trang", "Bình", "Nhung")
TEMPLATES = {
    "chat-van": "Đại biểu {name} chất vấn về tiến độ giải ngân vốn đầu tư công",
    "thao-luan": "Đại biểu {name} thảo luận tại hội trường về dự thảo nghị quyết",
    "phat-bieu": "Đại biểu {name} phát biểu ý kiến về chính sách hỗ trợ ngư dân",
}


@dataclass
class Term:
    """What was generated, and the independent count of what the report must say."""

    sessions: list[dict[str, Any]] = field(default_factory=list)
    delegates: dict[str, dict[str, str]] = field(default_factory=dict)  # person_id -> name, group
    speeches: dict[str, dict[str, int]] = field(default_factory=dict)  # person_id -> kind -> count
    appearances: dict[str, int] = field(default_factory=dict)
    plenary: dict[tuple[str, str], int] = field(default_factory=dict)  # (session, group) -> opinions
    speech_assets: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # person -> (asset, session)

    def spoke(self, pid: str, kind: str, asset_id: str, session: str | None, plenary: bool) -> None:
        self.speeches.setdefault(pid, {}).setdefault(kind, 0)
        self.speeches[pid][kind] += 1
        self.appearances[pid] = self.appearances.get(pid, 0) + 1
        self.speech_assets.setdefault(pid, []).append((asset_id, session or ""))
        if plenary and session:
            key = (session, self.delegates[pid]["group"])
            self.plenary[key] = self.plenary.get(key, 0) + 1


def _names(rng: random.Random, n: int) -> list[str]:
    names: set[str] = set()
    while len(names) < n:
        names.add(f"{rng.choice(SURNAMES)} {rng.choice(MIDDLES)} {rng.choice(GIVENS)}")
    return sorted(names)


def _xlsx(rows: list[list[str]]) -> bytes:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def _settled(s: Settings) -> None:
    await async_wait_for(lambda: consumer_settled(s, "tagger"), 120, what="the tagger settled")
    await async_wait_for(lambda: consumer_settled(s, "search-projector"), 120, what="the projector settled")


async def areport(http: httpx.AsyncClient, s: Settings) -> dict[str, Any]:
    return dict(_ok(await http.get(f"{s.search_url}/v1/delegates/report", headers=ARCHIVIST, params={"term": TERM})))


def report(http: httpx.Client, s: Settings, headers: dict[str, str] = ARCHIVIST, **params: Any) -> dict[str, Any]:
    return dict(_ok(http.get(f"{s.search_url}/v1/delegates/report", headers=headers, params={"term": TERM, **params})))


@pytest.fixture(scope="module")
async def term(services: Settings, event_store: EventStore, es: AsyncElasticsearch) -> Term:
    """14 delegates in 4 groups (12 from a CSV list, 2 from an XLSX one), 3 sessions, and
    some 40 captions: speeches in plenary and in group discussion, answers, appearances."""
    s = services
    rng = random.Random(14)
    names = _names(rng, 14)
    t = Term()
    assert not any(bundled_registry().lookup(n) for n in names)  # no namesake among the bundled people
    for i, name in enumerate(names):
        t.delegates[person_id_for(name)] = {"name": name, "group": GROUPS[i % len(GROUPS)]}
    lines = ["ho_ten,nhiem_ky,don_vi_bau_cu,to_dai_bieu"]
    lines += [f"{n},{TERM},Đơn vị bầu cử số {i % 4 + 1},{GROUPS[i % 4]}" for i, n in enumerate(names[:12])]
    async with httpx.AsyncClient(timeout=60) as http:
        csv_body = "\n".join(lines).encode()
        imported = _ok(
            await http.post(
                f"{s.catalogue_url}/v1/delegates/import",
                headers={**ARCHIVIST, "Content-Type": "text/csv"},
                content=csv_body,
            )
        )
        assert imported == {"rows": 12, "people_added": 12, "delegate_events": 12}
        again = _ok(
            await http.post(
                f"{s.catalogue_url}/v1/delegates/import",
                headers={**ARCHIVIST, "Content-Type": "text/csv"},
                content=csv_body,
            )
        )
        assert again["delegate_events"] == 0 and again["people_added"] == 0  # the same list again adds nothing
        sheet = [["Họ và tên", "Nhiệm kỳ", "Tổ đại biểu"]] + [
            [n, TERM, GROUPS[(12 + i) % 4]] for i, n in enumerate(names[12:])
        ]
        xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        from_xlsx = _ok(
            await http.post(
                f"{s.catalogue_url}/v1/delegates/import",
                headers={**ARCHIVIST, "Content-Type": xlsx},
                content=_xlsx(sheet),
            )
        )
        assert from_xlsx["rows"] == 2 and from_xlsx["delegate_events"] == 2
        listed = _ok(await http.get(f"{s.catalogue_url}/v1/delegates", headers=AUTH, params={"term": TERM}))
        assert {d["person_id"] for d in listed["delegates"]} == set(t.delegates) and listed["groups"] == sorted(GROUPS)
        for day, n in (("2027-07-10", 3), ("2027-12-08", 4), ("2028-07-12", 5)):
            body = {
                "title": f"Kỳ họp thứ {n} HĐND tỉnh khóa XII",
                "activity_type": "ky-hop",
                "term": TERM,
                "start_date": day,
            }
            t.sessions.append(
                _ok(await http.post(f"{s.catalogue_url}/v1/activities", headers=ARCHIVIST, json=body), 201)
            )
        pids = sorted(t.delegates)
        silent = pids[0]  # never recorded speaking this term
        quiet_group = t.delegates[pids[1]]["group"]  # no opinion at the first session
        run = uuid.uuid4().hex[:8]
        n = 0

        async def asset(caption: str, code: str, when: datetime, session: str | None) -> str:
            nonlocal n
            n += 1
            asset_id = f"a{run}d{n:03d}"
            await event_store.append(
                ingested(asset_id, f"Tư liệu {run} số {n}", caption, activity_type=code, recorded_at=when)
            )
            if session:
                _ok(
                    await http.put(
                        f"{s.catalogue_url}/v1/assets/{asset_id}/activity",
                        headers=ARCHIVIST,
                        json={"activity_id": session},
                    )
                )
            return asset_id

        for k, session in enumerate(t.sessions):
            when = datetime.fromisoformat(session["start_date"]).replace(hour=2, tzinfo=UTC)
            for pid in pids:
                if pid == silent or (k == 0 and t.delegates[pid]["group"] == quiet_group) or rng.random() < 0.55:
                    continue
                kind = rng.choice(sorted(TEMPLATES))
                in_group = kind == "thao-luan" and rng.random() < 0.3
                caption = TEMPLATES[kind].format(name=t.delegates[pid]["name"])
                if in_group:
                    caption = caption.replace("tại hội trường", "tại Tổ")
                asset_id = await asset(caption, "ky-hop", when, session["activity_id"])
                t.spoke(pid, kind, asset_id, session["activity_id"], plenary=not in_group)
            answered = rng.choice([p for p in pids if p != silent and t.delegates[p]["group"] != quiet_group])
            caption = f"Giám đốc Sở Y tế Lê Văn Bình trả lời chất vấn của đại biểu {t.delegates[answered]['name']}"
            asset_id = await asset(caption, "ky-hop", when, session["activity_id"])
            t.spoke(answered, "chat-van", asset_id, session["activity_id"], plenary=True)
        for pid in pids[:6]:  # appearances and a speech outside any session
            when = datetime(2029, 3, 5, 2, tzinfo=UTC)
            await asset(
                f"Đồng chí {t.delegates[pid]['name']} dự tiếp xúc cử tri tại xã Phước Dinh",
                "tiep-xuc-cu-tri",
                when,
                None,
            )
            t.appearances[pid] = t.appearances.get(pid, 0) + 1
        outside = pids[7]
        when = datetime(2029, 3, 6, 2, tzinfo=UTC)
        asset_id = await asset(
            f"Đại biểu {t.delegates[outside]['name']} phát biểu tại buổi tiếp xúc cử tri", "tiep-xuc-cu-tri", when, None
        )
        t.spoke(outside, "phat-bieu", asset_id, None, plenary=False)
    await _settled(s)
    await es.indices.refresh(index=f"{s.es_index_prefix}-assets")
    return t


def test_the_delegate_report_and_its_checklist_equal_an_independent_count_of_the_generated_term(
    services: Settings, http: httpx.Client, term: Term
) -> None:
    got = report(http, services, evidence=100)
    rows = {r["person_id"]: r for r in got["delegates"]}
    assert set(rows) == set(term.delegates)
    for pid in term.delegates:
        want = term.speeches.get(pid, {})
        assert rows[pid]["by_kind"] == want, rows[pid]["name"]
        assert rows[pid]["speeches"] == sum(want.values())
        assert rows[pid]["appearances"] == term.appearances.get(pid, 0)
        assert sorted(rows[pid]["speech_evidence"]) == sorted(a for a, _ in term.speech_assets.get(pid, []))
        by_session = {b["session"]: b["count"] for b in rows[pid]["by_session"]}
        for b in rows[pid]["by_session"]:  # each count names the assets behind it
            assert sorted(b["evidence"]) == sorted(a for a, sess in term.speech_assets[pid] if sess == b["session"])
        want_sessions: dict[str, int] = {}
        for _, session in term.speech_assets.get(pid, []):
            if session:
                want_sessions[session] = want_sessions.get(session, 0) + 1
        assert by_session == want_sessions
    silent = {pid for pid in term.delegates if not term.speeches.get(pid)}
    assert {d["person_id"] for d in got["checklist"]["delegates_without_speech"]} == silent
    assert len(silent) >= 1 and not got["checklist"]["every_delegate_has_spoken"]
    for session in got["sessions"]:
        for cell in session["groups"]:
            assert cell["opinions"] == term.plenary.get((session["session"], cell["group"]), 0), cell
    want_missing = [
        (s["activity_id"], sorted(g for g in GROUPS if not term.plenary.get((s["activity_id"], g))))
        for s in term.sessions
    ]
    got_missing = {m["session"]: sorted(m["groups"]) for m in got["checklist"]["groups_without_opinion"]}
    assert got_missing == {sid: groups for sid, groups in want_missing if groups}
    assert term.sessions[0]["activity_id"] in got_missing  # the quiet group at the first session
    # Filters: one group's delegates only; one session only.
    one = report(http, services, group=GROUPS[0])
    assert {r["person_id"] for r in one["delegates"]} == {
        p for p, d in term.delegates.items() if d["group"] == GROUPS[0]
    }
    first = term.sessions[0]["activity_id"]
    only = report(http, services, session=first)
    assert all(b["session"] == first for r in only["delegates"] for b in r["by_session"])
    assert [s["session"] for s in only["sessions"]] == [first]


def test_the_report_exports_as_csv_and_xlsx_with_one_row_per_delegate(
    services: Settings, http: httpx.Client, term: Term
) -> None:
    response = http.get(f"{services.search_url}/v1/delegates/report.csv", headers=PRODUCER, params={"term": TERM})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][0] == "Họ tên" and len(rows) == 1 + len(term.delegates)
    by_name = {r[0]: r for r in rows[1:]}
    for pid, d in term.delegates.items():
        assert int(by_name[d["name"]][6]) == sum(term.speeches.get(pid, {}).values())
    response = http.get(f"{services.search_url}/v1/delegates/report.xlsx", headers=PRODUCER, params={"term": TERM})
    assert response.status_code == 200
    book = load_workbook(io.BytesIO(response.content), read_only=True)
    assert book.sheetnames == ["Đại biểu", "Tổ theo kỳ họp", "Chỉ tiêu"]
    assert len(list(book["Đại biểu"].iter_rows(values_only=True))) == 1 + len(term.delegates)
    bad = http.get(f"{services.search_url}/v1/delegates/report", headers=PRODUCER, params={"term": "1990-1995"})
    assert bad.status_code == 422 and bad.json()["error"]["message"] and bad.json()["error"]["message_en"]
    assert http.get(f"{services.search_url}/v1/delegates/report", params={"term": TERM}).status_code == 401


async def test_an_archivists_correction_wins_over_the_tagger_also_after_a_retag_until_handed_back(
    services: Settings, term: Term, es: AsyncElasticsearch
) -> None:
    s = services
    async with httpx.AsyncClient(timeout=60) as http:
        await _correction_wins(s, http, term, es)


async def _correction_wins(s: Settings, http: httpx.AsyncClient, term: Term, es: AsyncElasticsearch) -> None:
    silent = next(p for p in sorted(term.delegates) if not term.speeches.get(p))
    speaker = next(p for p in sorted(term.speech_assets) if any(sess for _, sess in term.speech_assets[p]))
    asset_id = next(a for a, sess in term.speech_assets[speaker] if sess)
    before = {r["person_id"]: r["speeches"] for r in (await areport(http, s))["delegates"]}
    name = term.delegates[silent]["name"]
    body = {"action": "correct", "speeches": [{"name": name.upper(), "kind": "chat-van"}], "note": "sửa tay"}
    decided = _ok(await http.put(f"{s.catalogue_url}/v1/assets/{asset_id}/speeches", headers=ARCHIVIST, json=body))
    assert decided["speech_status"] == "corrected"
    assert [(x["person_id"], x["origin"]) for x in decided["speeches"]] == [(silent, "manual")]
    _ok(
        await http.post(f"{s.catalogue_url}/v1/assets/{asset_id}/retag", headers=ARCHIVIST, json={"reason": "thử"}), 202
    )

    async def settled_report() -> dict[str, int]:
        await _settled(s)
        await es.indices.refresh(index=f"{s.es_index_prefix}-assets")
        return {r["person_id"]: r["speeches"] for r in (await areport(http, s))["delegates"]}

    after = await settled_report()
    assert after[silent] == before[silent] + 1 and after[speaker] == before[speaker] - 1
    tags = _ok(await http.get(f"{s.catalogue_url}/v1/assets/{asset_id}/tags", headers=ARCHIVIST))
    assert sum(e["type"] == "asset.tagged" for e in tags["events"]) == 2  # re-tagged, and still corrected
    assert [x["person_id"] for x in tags["speeches"]] == [silent]
    refused = await http.put(f"{s.catalogue_url}/v1/assets/{asset_id}/speeches", headers=AUTH, json={"action": "reset"})
    assert refused.status_code == 403
    _ok(await http.put(f"{s.catalogue_url}/v1/assets/{asset_id}/speeches", headers=ARCHIVIST, json={"action": "reset"}))
    assert await settled_report() == before
    confirmed = _ok(
        await http.put(
            f"{s.catalogue_url}/v1/assets/{asset_id}/speeches", headers=ARCHIVIST, json={"action": "confirm"}
        )
    )
    assert confirmed["speech_status"] == "confirmed" and [x["person_id"] for x in confirmed["speeches"]] == [speaker]
    assert await settled_report() == before


async def test_names_across_time_find_each_other_with_exact_matches_ranked_first_and_facets_grouped(
    services: Settings, event_store: EventStore
) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        await _names_across_time(services, http, event_store)


async def _names_across_time(s: Settings, http: httpx.AsyncClient, event_store: EventStore) -> None:
    word = "mốc" + uuid.uuid4().hex[:6]
    titles = {
        "new": f"Tiếp xúc cử tri tại Khánh Hòa {word}",
        "old": f"Tiếp xúc cử tri tại Ninh Thuận {word}",
        "short": f"TXCT tại Khánh Hòa {word}",
        "hdnd": f"Kỳ họp HĐND tỉnh {word}",
        "full": f"Kỳ họp Hội đồng nhân dân tỉnh {word}",
    }
    ids = {k: f"a{word[3:]}{k}" for k in titles}
    last = 0
    for key, title in titles.items():
        last = (await event_store.append(ingested(ids[key], title, activity_type="khac"))).sequence
    orgs = {"old": ["Sở Tài nguyên và Môi trường"], "new": ["Sở Nông nghiệp và Môi trường"]}
    for key, value in orgs.items():
        edited = _ok(
            await http.patch(
                f"{s.catalogue_url}/v1/assets/{ids[key]}/metadata", headers=ARCHIVIST, json={"organisations": value}
            )
        )
        assert edited["organisations"] == value

    async def search(q: str, **params: Any) -> dict[str, Any]:
        return dict(
            _ok(
                await http.get(
                    f"{s.search_url}/v1/search",
                    headers=ARCHIVIST,
                    params={"q": q, "after_seq": last, "refresh": True, **params},
                )
            )
        )

    async def edits_indexed() -> bool:
        await _settled(s)
        found = await search(word, organisation="Sở Nông nghiệp và Môi trường")
        return found["total"] == 2

    await async_wait_for(edits_indexed, 120, what="the organisation edits indexed")
    found = await search(f"tiếp xúc cử tri Khánh Hòa {word}")
    order = [h["asset_id"] for h in found["hits"]]
    # Longer queries may match on most of their words: the three named ones come first.
    assert order[0] == ids["new"] and set(order[:3]) == {ids["new"], ids["old"], ids["short"]}
    note = next(a for a in found["aliases"] if a["kind"] == "merged")
    assert note["current"] == "Khánh Hòa" and note["also_searched"] == ["Ninh Thuận"]
    old_name = await search(f"Ninh Thuận {word}")
    assert {h["asset_id"] for h in old_name["hits"]} == {ids["old"]}  # the old name: as it was
    short = [h["asset_id"] for h in (await search(f"TXCT {word}"))["hits"]]
    assert short[0] == ids["short"] and set(short[:3]) == {ids["new"], ids["old"], ids["short"]}
    for typed, exact in ((f"HĐND tỉnh {word}", "hdnd"), (f"hoi dong nhan dan tinh {word}", "full")):
        hits = [h["asset_id"] for h in (await search(typed))["hits"]]
        assert hits[0] == ids[exact] and set(hits[:2]) == {ids["hdnd"], ids["full"]}
    facets = (await search(word, facets=["organisation"]))["facets"]["organisation"]
    grouped = next(f for f in facets if f["value"] == "Sở Nông nghiệp và Môi trường")
    assert grouped == {
        "value": "Sở Nông nghiệp và Môi trường",
        "count": 2,
        "aliases": [{"value": "Sở Tài nguyên và Môi trường", "count": 1}],
    }
    assert not any(f["value"] == "Sở Tài nguyên và Môi trường" for f in facets)
