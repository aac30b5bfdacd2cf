"""What the renderer keeps between calls (the plan's phase index, formatted dates, escaped text) never
carries one input's result over to another."""

from __future__ import annotations

from dataclasses import replace

from bot.checklists import items, task_view
from bot.domain import TaskCheck
from bot.plan import Plan
from bot.rules import release_from_plan
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
