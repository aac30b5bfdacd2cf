"""One channel, one copy: only a true repeat of a post to the same channel is dropped."""

from __future__ import annotations

from bot.core.posts import one_post_per_channel
from bot.domain import Post
from bot.plan import parse_plan
from tests.conftest import plan_text

ONE_CHANNEL = parse_plan(
    plan_text().replace(
        "channels: {war_room: C0WAR, announcements: C0ANN, incidents: C0INC}",
        "channels: {war_room: C0WAR, announcements: C0WAR, incidents: C0WAR}",
    ),
    "one.yml",
)


def test_a_copy_for_another_purpose_of_the_same_channel_is_dropped() -> None:
    card = Post("war_room", "issue_card", {"number": 1}, key="issue:1")
    copy = Post("incidents", "issue_card", {"number": 1, "copy": "incidents"}, key="issue:1:incidents")
    assert one_post_per_channel((card, copy), ONE_CHANNEL) == (card,)


def test_different_posts_of_one_template_to_one_channel_are_all_kept() -> None:
    posts = tuple(Post("announcements", "inline", {"inline": f"News {n}"}, key=f"news:{n}") for n in range(3))
    assert one_post_per_channel(posts, ONE_CHANNEL) == posts
