"""What the renderer keeps between calls (the plan's phase index, formatted dates, escaped text) never
carries one input's result over to another."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import jinja2
import pytest

from bot.checklists import items, task_view
from bot.domain import TaskCheck
from bot.plan import Plan
from bot.rules import release_from_plan
from messages import blocks as bk
from messages.render import date_token, environment, render, time_token
from tests.conftest import T0


def test_a_copied_plan_with_other_phases_finds_its_own_phases(plan: Plan) -> None:
    first, second = plan.phases[0], plan.phases[1]
    assert plan.phase_spec(first.id) == first  # the original's index is built and kept
    renamed = first.model_copy(update={"name": "Renamed", "tasks": ["only task"]})
    copy = plan.model_copy(update={"phases": [renamed]})
    assert copy.phase_spec(first.id) == renamed
    assert copy.phase_spec(second.id) is None
    assert items(copy, first.id) == ["only task"]
    assert plan.phase_spec(first.id) == first
    assert plan.phase_spec(second.id) == second
    assert plan.phase_spec("no-such-phase") is None


def test_a_phases_tasks_come_from_the_plan_the_view_is_rendered_with(plan: Plan) -> None:
    first = plan.phases[0]
    with_tasks = plan.model_copy(
        update={"phases": [first.model_copy(update={"tasks": ["back up", "migrate"]}), *plan.phases[1:]]}
    )
    release = release_from_plan(plan)
    ticked = replace(release, task_checks=(TaskCheck(first.id, 2, "U0DBA", T0, "ok"),))
    assert task_view(ticked, with_tasks, first.id)["tasks_done"] == 1
    assert [t["text"] for t in task_view(ticked, with_tasks, first.id)["tasks_open"]] == ["back up"]
    assert task_view(release, with_tasks, first.id)["tasks_done"] == 0
    assert task_view(ticked, plan, first.id)["tasks_total"] == 0  # the original plan lists no tasks there


def test_a_date_shows_the_zone_it_is_asked_for_each_time() -> None:
    at = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)
    assert date_token(at, "UTC") == "<!date^1796508000^{date_short_pretty} {time}|Sat 05 Dec 2026 22:00 UTC>"
    assert date_token(at, "America/New_York") == (
        "<!date^1796508000^{date_short_pretty} {time}|Sat 05 Dec 2026 17:00 EST>"
    )
    assert time_token(at, "UTC") == "<!date^1796508000^{time}|22:00 UTC>"
    assert time_token(at, "Asia/Kolkata") == "<!date^1796508000^{time}|03:30 IST>"
    assert date_token(at.isoformat(), "Asia/Kolkata") == date_token(at, "Asia/Kolkata")


def test_the_two_wall_times_of_an_autumn_fold_are_two_dates() -> None:
    zone = ZoneInfo("America/New_York")
    first = datetime(2026, 11, 1, 1, 30, tzinfo=zone)  # EDT
    second = first.replace(fold=1)  # an hour later, EST: equal to `first` as Python compares them
    assert first == second
    assert time_token(first, "America/New_York") == "<!date^1793511000^{time}|01:30 EDT>"
    assert time_token(second, "America/New_York") == "<!date^1793514600^{time}|01:30 EST>"
    assert time_token(first.astimezone(UTC), "UTC") == "<!date^1793511000^{time}|05:30 UTC>"


def test_a_status_card_shows_the_plans_own_zone_and_names(plan: Plan) -> None:
    release = release_from_plan(plan)
    now = T0 + timedelta(minutes=5)
    in_utc = render(plan, "status_card", release, now)
    elsewhere = plan.model_copy(update={"release": plan.release.model_copy(update={"timezone": "Asia/Kolkata"})})
    in_kolkata = render(elsewhere, "status_card", replace(release, timezone="Asia/Kolkata"), now)
    assert "UTC>" in str(in_utc.blocks) and "IST>" not in str(in_utc.blocks)
    assert "IST>" in str(in_kolkata.blocks) and "UTC>" not in str(in_kolkata.blocks)
    first = release.phases[0]
    renamed = replace(release, phases=(replace(first, name="Drain <!channel> & go"), *release.phases[1:]))
    again = render(plan, "status_card", renamed, now)
    assert f"*{first.name}*" in str(in_utc.blocks)
    assert "*Drain &lt;!channel&gt; &amp; go*" in str(again.blocks)
    assert "<!channel>" not in str(again.blocks) + again.text
    assert f"*{first.name}*" not in str(again.blocks)


def test_view_data_reads_as_jinja_reads_any_dict(plan: Plan) -> None:
    release = release_from_plan(plan)
    shown = (
        environment(None)
        .from_string("{{ data.a }} {% for k, v in data.items() %}{{ k }}={{ v }};{% endfor %} [{{ data.get('keys') }}]")
        .render(data={"a": "<b>", "items": "not a method", "keys": "k"})
    )
    # `items` is the method, as Jinja finds an attribute before an item
    assert shown == (
        f"{bk.value('&lt;b&gt;')} {bk.value('a')}={bk.value('&lt;b&gt;')};{bk.value('items')}="
        f"{bk.value('not a method')};{bk.value('keys')}={bk.value('k')}; [{bk.value('k')}]"
    )
    with pytest.raises(jinja2.UndefinedError, match="'dict object' has no attribute 'missing'"):
        environment(None).from_string("{{ data.missing }}").render(data={})
    assert render(plan, "phase_list", release, T0).blocks


def test_a_copied_plan_with_other_people_gives_their_roles_not_its_originals(plan: Plan) -> None:
    from bot.core.demo import demo_plan

    assert plan.role_of_person["U0DBA"] == frozenset({"dba"})  # the original's roles are looked up and kept
    demo = demo_plan(plan, T0, "U0DEMO")  # one member in every role, as `warroom run --demo --demo-user` gives
    assert demo.role_of_person == {"U0DEMO": frozenset(plan.people)}, "the copy's own people, not the original's"
    other = plan.model_copy(update={"people": {**plan.people, "dba": ["U0NEW"]}})
    assert other.role_of_person["U0NEW"] == frozenset({"dba"}) and "U0DBA" not in other.role_of_person
    assert plan.role_of_person["U0DBA"] == frozenset({"dba"}), "the original keeps its own"
