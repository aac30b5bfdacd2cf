"""Who hears about a message Slack refused for good, and what the notice says (pure rules)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import messages.delivery_cards  # noqa: F401 - registers the notice
from bot.core.delivery import PERMANENT_ERRORS, failure_notices, hint
from bot.plan import Plan
from messages import blocks as bk
from messages.render import compose

NOW = datetime(2026, 12, 5, 20, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("channel", "error", "to"),
    [
        ("announcements", "is_archived", ["war_room"]),
        ("incidents", "not_in_channel", ["war_room"]),
        ("U0OC1", "user_not_found", ["war_room"]),
        ("war_room", "msg_blocks_too_long", ["war_room"]),  # the message, not the war room, is the problem
        ("war_room", "is_archived", ["U0RM"]),
        ("war_room", "channel_not_found", ["U0RM"]),
    ],
)
def test_the_notice_goes_to_the_war_room_unless_the_war_room_is_what_refuses(
    plan: Plan, channel: str, error: str, to: list[str]
) -> None:
    notices = failure_notices(plan, key="announcement:start", channel=channel, error=error)
    assert [n.channel for n in notices] == to
    assert all(n.key and n.key.startswith("notice:undeliverable:") for n in notices)


def test_a_notice_that_fails_raises_no_notice_of_its_own(plan: Plan) -> None:
    [notice] = failure_notices(plan, key="announcement:start", channel="announcements", error="is_archived")
    assert notice.key
    assert failure_notices(plan, key=notice.key, channel="war_room", error="is_archived") == ()


@pytest.mark.parametrize("error", sorted(PERMANENT_ERRORS))
def test_every_notice_says_what_to_do_and_fits_slacks_limits(plan: Plan, error: str) -> None:
    assert hint(error).strip()
    [notice] = failure_notices(plan, key="custom:<!channel>", channel="announcements", error=error)
    message = compose(plan, notice.template, None, NOW, notice.data)  # type: ignore[arg-type]  # not read
    bk.validate(message.blocks)
    assert message.text and "<!channel>" not in message.text and "<!channel>" not in str(message.blocks)
