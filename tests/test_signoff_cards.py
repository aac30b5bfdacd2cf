"""The sign-off table, the handoff and the follow-up reminder: valid Block Kit within Slack's limits, typed
text escaped, and the example's ones in `warroom preview` at their times."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from bot.cli import main
from bot.domain import Issue, Page, ReleaseStatus, Severity, SignOff, SignOffStatus
from bot.plan import load_plan, parse_plan
from bot.rules import release_from_plan
from messages import blocks as bk
from messages.render import compose
from messages.signoff_cards import refuse_modal
from tests.conftest import ROOT, T0
from tests.test_signoffs import signoff_plan_text

UNIFIED = ROOT / "examples" / "unifiedhealth-golive.yml"


def many_signoffs_plan_text(count: int = 20) -> str:
    roles = "".join(f"  role{n}: [U0R{n:03d}]\n" for n in range(count))
    text = signoff_plan_text().replace("  day_lead: [U0DAY]\n", "  day_lead: [U0DAY]\n" + roles)
    listed = "".join(f"  - {{role: role{n}, criterion: '{'x' * 290} {n}'}}\n" for n in range(count))
    start = text.index("signoffs:\n")
    end = text.index("success_criteria:")
    return text[:start] + "signoffs:\n" + listed + text[end:]


def test_twenty_signoffs_with_long_criteria_fit_one_message() -> None:
    plan = parse_plan(many_signoffs_plan_text(), "many.yml")
    release = replace(release_from_plan(plan), status=ReleaseStatus.COMPLETED, signoffs_requested_at=T0)
    release = release.with_signoff(SignOff("role3", SignOffStatus.REFUSED, "U0R003", T0, "<!channel> " + "y" * 3000))
    message = compose(plan, "signoffs", release, T0, {})
    bk.validate(message.blocks)
    assert len(message.blocks) <= bk.MAX_BLOCKS and message.text
    shown = json.dumps(message.blocks)
    assert "*Role19* (<@U0R019>)" in shown and "&lt;!channel&gt;" in shown and "<!channel>" not in shown
    [refusals] = [b for b in message.blocks if b["type"] == "actions"]
    assert len(refusals["elements"]) == 19  # every role not answered yet; the refused one signs from its row


def test_a_crowded_handoff_stays_within_slacks_limits_and_says_what_it_left_out() -> None:
    plan = parse_plan(signoff_plan_text(), "signoffs.yml")
    release = replace(release_from_plan(plan), status=ReleaseStatus.IN_PROGRESS, started_at=T0, handoff_posted_at=T0)
    for n in range(1, 31):
        issue = Issue(n, Severity.HIGH, "api", f"<!here> impact {n} " + "z" * 500, "U0QA", T0, investigator="U0DBA")
        release = release.with_issue(issue)
        release = release.with_page(Page(n, 1, ("U0OC1",), f"reason {n} " + "r" * 400, "U0RM", T0))
    message = compose(plan, "handoff", release, T0 + timedelta(hours=3), {})
    bk.validate(message.blocks)
    assert len(message.blocks) <= bk.MAX_BLOCKS
    shown = json.dumps(message.blocks)
    assert "and 15 more open issues" in shown and "and 20 more open pages" in shown
    assert "&lt;!here&gt;" in shown and "<!here>" not in shown


def test_the_refusal_form_is_a_valid_modal() -> None:
    plan = parse_plan(signoff_plan_text(), "signoffs.yml")
    modal = refuse_modal(release_from_plan(plan), plan, "qa_lead", "C0WAR")
    bk.validate(modal["blocks"])
    assert json.loads(modal["private_metadata"]) == {"release": "r1", "role": "qa_lead", "channel": "C0WAR"}


@pytest.mark.parametrize("template", ["signoffs", "signoffs_approved", "handoff", "handoff_accepted", "follow_up"])
def test_every_new_message_of_the_example_is_valid(template: str) -> None:
    plan, _ = load_plan(str(UNIFIED))
    end = plan.release.window.end
    release = replace(
        release_from_plan(plan),
        status=ReleaseStatus.COMPLETED,
        started_at=plan.t0,
        ended_at=end,
        signoffs_requested_at=end,
        approved_at=end,
        handoff_posted_at=end,
        handoff_accepted_by="U01DAYLEAD",
        handoff_accepted_at=end,
    )
    message = compose(plan, template, release, end, {"number": 1, "outcome": "success"})
    bk.validate(message.blocks)
    assert message.text.strip()


def test_preview_lists_the_handoff_signoffs_and_follow_ups_at_their_times(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preview", str(UNIFIED)]) == 0
    heads = [line for line in capsys.readouterr().out.splitlines() if line.startswith("=== ")]
    assert any(h.startswith("=== 2026-12-06 06:00 UTC | #deployment-war-room | handoff:") for h in heads)
    assert any(h.startswith("=== 2026-12-06 06:00 UTC | #deployment-war-room | signoffs:") for h in heads)
    follow_ups = [h[4:24] for h in heads if "| follow_up:" in h]
    days = ["2026-12-06", "2026-12-06", "2026-12-07", "2026-12-12"]
    assert follow_ups == [f"{day} 22:00 UTC" for day in days]
    assert all("only if the release" in h for h in heads if "handoff:" in h or "follow_up:" in h)


def test_the_example_carries_the_references_signoffs_handoff_links_and_follow_ups() -> None:
    plan, _ = load_plan(str(UNIFIED))
    assert [s.role for s in plan.signoffs] == [
        "release_manager",
        "devops_lead",
        "dba",
        "qa_lead",
        "security",
        "vp_engineering",
    ]
    assert plan.handoff is not None and plan.at(plan.handoff.at).strftime("%H:%M") == "06:00"
    assert plan.members(plan.handoff.oncall or []) and plan.members([plan.handoff.to])
    assert [link.url for link in plan.links] == [
        "https://grafana.unifiedhealth.io/deployment",
        "https://prometheus.unifiedhealth.io",
    ]
    assert plan.at(plan.follow_ups[-1].at) - plan.t0 == timedelta(days=7)
