"""Merges, renames and assignments racing each other, against the real event store:
whatever runs concurrently, no merge cycle forms, every asset stays on a live
activity and no acknowledged edit is lost (issue 10, finding 4).

Hypothesis draws rounds of concurrent commands; each round's commands run at
once through the catalogue's own handlers (the HTTP layer adds nothing to the
race). A 409 or a refusal is an allowed answer; anything else fails the test.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.catalogue.api import CatalogueDeps, assign, create_activity, edit_activity, merge_activity
from services.catalogue.commands import AssignActivity, CreateActivity, EditActivity, MergeActivity
from services.catalogue.decide import fold_asset
from shared.activities import fold_activity
from shared.auth import Principal, Role
from shared.eventstore import EventStore
from shared.http import UserError
from shared.settings import Settings
from tests.search_corpus import ingested

pytestmark = pytest.mark.integration
ACTIVITIES, ASSETS = 3, 3
TESTER = Principal("test", "test", Role.LUU_TRU)

Op = tuple[str, int, int]
ops = st.one_of(
    st.tuples(st.just("merge"), st.integers(0, ACTIVITIES - 1), st.integers(0, ACTIVITIES - 1)),
    st.tuples(st.just("rename"), st.integers(0, ACTIVITIES - 1), st.integers(0, 9)),
    st.tuples(st.just("assign"), st.integers(0, ASSETS - 1), st.integers(0, ACTIVITIES - 1)),
)
rounds = st.lists(st.lists(ops, min_size=2, max_size=4), min_size=1, max_size=3)


async def _scenario(s: Settings, plan: list[list[Op]]) -> None:
    events = await EventStore.connect(s.resolved_nats_url, s.event_stream)
    try:
        d = CatalogueDeps(s, events)
        acts = []
        for i in range(ACTIVITIES):
            body = CreateActivity(title=f"Hoạt động {i}", activity_type="ky-hop", start_date=date(2024, 5, i + 1))
            acts.append((await create_activity(body, TESTER, d))["activity_id"])
        assets = []
        for i in range(ASSETS):
            asset_id = "a" + uuid.uuid4().hex
            await events.append(ingested(asset_id, f"Ảnh {i}"))
            assets.append(asset_id)
        renamed: list[tuple[str, str]] = []  # (activity, title) of every acknowledged rename

        async def run(op: Op) -> Any:
            kind, a, b = op
            if kind == "merge":
                return await merge_activity(acts[a], MergeActivity(into_activity_id=acts[b]), TESTER, d)
            if kind == "rename":
                title = f"Tên mới {b} {uuid.uuid4().hex[:6]}"
                await edit_activity(acts[a], EditActivity(title=title), TESTER, d)
                renamed.append((acts[a], title))
                return None
            return await assign(assets[a], AssignActivity(activity_id=acts[b]), TESTER, d)

        for batch in plan:
            for outcome in await asyncio.gather(*(run(op) for op in batch), return_exceptions=True):
                if isinstance(outcome, UserError):
                    assert outcome.status in (404, 409, 422), outcome.body()
                elif isinstance(outcome, BaseException):
                    raise outcome

        state = {a: fold_activity(await events.history("activity", a)) for a in acts}
        for start in acts:  # no cycle: every chain of merges ends on a live activity
            current, hops = state[start], 0
            while current is not None and current.merged_into is not None:
                hops += 1
                assert hops <= ACTIVITIES, f"merge cycle through {start}: {plan}"
                current = state[current.merged_into]
        for asset_id in assets:  # every asset on a live activity
            folded = fold_asset(await events.history("asset", asset_id))
            assert folded is not None
            if folded.activity_id is not None:
                act = state[folded.activity_id]
                assert act is not None and act.merged_into is None, f"{asset_id} left on a merged activity: {plan}"
        for activity_id, title in renamed:  # no acknowledged edit lost
            titles = [e.envelope.payload.get("title") for e in await events.history("activity", activity_id)]
            assert title in titles, f"acknowledged rename {title!r} of {activity_id} is not in the log"
    finally:
        await events.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=rounds)
def test_concurrent_merges_renames_and_assignments_keep_the_activities_consistent(
    quiet_nats: Settings, plan: list[list[Op]]
) -> None:
    asyncio.run(_scenario(quiet_nats, plan))


def test_two_crossed_merges_never_both_land(quiet_nats: Settings) -> None:
    """The exact reproduction of the finding: A into B while B into A, many times over."""
    for _ in range(10):
        asyncio.run(_scenario(quiet_nats, [[("merge", 0, 1), ("merge", 1, 0)], [("merge", 1, 2), ("merge", 2, 1)]]))
