"""A template gets the part of the view it reads: what it renders is what the whole view would give, for every
template and every moment a plan's check renders; one that shares its context with another template gets it
all; and a name read in a way the analysis misses still renders."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

import jinja2
import pytest

from bot import validate
from bot.core.simulate import on_plan
from bot.plan import Plan, load_plan
from bot.rules import release_from_plan
from messages import render as rendering
from messages.render import compose, environment, template_reads, view

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.yml"))


def whole_view_compose(plan: Plan, item: validate.Rendering) -> object:
    """What `compose` gives when every template gets the whole view."""
    whole = rendering.view

    def everything(*args: object, names: object = None) -> dict[str, object]:
        return whole(*args)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rendering, "view", everything)
        return compose(plan, item.template, item.release, item.at, item.data)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_message_a_plan_can_send_renders_as_with_the_whole_view(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plan, _ = load_plan(str(path))
    items = list(validate.renderings(plan))
    assert len(items) > 20
    for item in items:
        with caplog.at_level(logging.DEBUG, logger="messages.render"):
            partial = compose(plan, item.template, item.release, item.at, item.data)
        assert not caplog.records, f"{item.template}: the analysis missed a name it reads"
        assert partial == whole_view_compose(plan, item), (item.template, item.at)


def test_a_phase_update_reads_one_phase_not_the_whole_plan(plan: Plan) -> None:
    env = environment(None)
    env.get_template("phase_update.j2")
    reads = env.reads["phase_update.j2"]  # type: ignore[attr-defined]
    source, _, _ = env.loader.get_source(env, "phase_update.j2")  # type: ignore[union-attr]
    assert reads == template_reads(env, source), "noted when compiled: what parsing it again finds"
    assert reads is not None and "phase" in reads
    assert not reads & {"phases", "completed", "unfinished", "current"}
    release = release_from_plan(plan)
    shown = view(release, plan, plan.t0, {"phase": plan.phases[1].id}, names=reads)
    assert shown["phase"]["name"] == plan.phases[1].name
    assert "phases" not in shown
    assert "phase" not in view(release, plan, plan.t0, {"phase": "no-such-phase"}, names=reads)
    assert "phase" not in view(release, plan, plan.t0, {})


def test_a_template_naming_phase_outside_a_phase_message_fails_as_before(plan: Plan) -> None:
    with pytest.raises(rendering.RenderError, match="'phase' is undefined"):
        compose(plan, "inline", release_from_plan(plan), plan.t0, {"inline": "Now: {{ phase }} done"})


def test_a_template_that_includes_another_gets_the_whole_view(plan: Plan, tmp_path: Path) -> None:
    (tmp_path / "shared.j2").write_text("{{ phases | length }} phases")
    (tmp_path / "status_card.j2").write_text('Card: {% include "shared.j2" %}')
    env = environment(str(tmp_path))
    assert template_reads(env, (tmp_path / "status_card.j2").read_text()) is None
    plan = plan.model_copy(update={"templates_dir": str(tmp_path)})
    message = compose(plan, "status_card", release_from_plan(plan), plan.t0, {})
    assert f"Card: {len(plan.phases)} phases" in message.text


def test_a_name_the_analysis_misses_is_found_in_the_whole_view(
    plan: Plan, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:

    def too_little(env: jinja2.Environment, source: str) -> frozenset[str]:
        return frozenset({"data"})

    monkeypatch.setattr(rendering, "template_reads", too_little)
    rendering._inline_reads.cache_clear()
    try:
        with caplog.at_level(logging.DEBUG, logger="messages.render"):
            inline = {"inline": "{{ phases | length }} to go"}
            message = compose(plan, "inline", release_from_plan(plan), plan.t0, inline)
    finally:
        rendering._inline_reads.cache_clear()
    assert f"{len(plan.phases)} to go" in message.text
    assert "rendered with the whole view" in caplog.text


def test_a_strict_template_still_fails_on_a_name_no_view_has(plan: Plan) -> None:
    with pytest.raises(rendering.RenderError, match="nonesuch"):
        compose(plan, "inline", release_from_plan(plan), plan.t0, {"inline": "{{ nonesuch.name }}"})


def test_phases_made_for_earlier_moments_are_the_phases_a_fresh_call_makes(plan: Plan) -> None:
    fresh = release_from_plan(plan)
    made: dict = {}
    moments = [plan.t0 + (plan.release.window.end - plan.t0) * k / 7 for k in range(8)]
    for at in moments + list(reversed(moments)):
        assert on_plan(fresh, at, made) == on_plan(fresh, at)
    assert replace(on_plan(fresh, moments[3], made)) == on_plan(fresh, moments[3])


def test_a_template_file_changed_on_disk_is_given_what_it_reads_now(
    plan: Plan, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    card = tmp_path / "status_card.j2"
    card.write_text("{{ progress }}% done")
    plan = plan.model_copy(update={"templates_dir": str(tmp_path)})
    release = release_from_plan(plan)
    assert "0% done" in compose(plan, "status_card", release, plan.t0, {}).text
    card.write_text("{{ phases | length }} phases")
    stat = card.stat()
    os.utime(card, (stat.st_atime + 10, stat.st_mtime + 10))  # Jinja reloads a file whose time changed
    with caplog.at_level(logging.DEBUG, logger="messages.render"):
        assert f"{len(plan.phases)} phases" in compose(plan, "status_card", release, plan.t0, {}).text
    assert not caplog.records
