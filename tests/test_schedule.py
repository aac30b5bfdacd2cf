"""Scheduled messages on a controlled clock: on time, delayed after a restart, skipped past grace,
never twice — also when the process dies between posting and recording it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from bot.app import Runtime, build_runtime
from bot.domain import Actor, Outcome, Post, ReleaseStatus, Vote
from bot.lifecycle import start
from bot.plan import parse_plan
from bot.service import LoadedPlan
from bot.votes import CastVote, DecideVote, cast_vote, decide
from messages import blocks as bk
from storage import repo
from tests.conftest import FAST_PACE, T0, Clock, make_settings, plan_text
from tests.fake_slack import FakeSlack

ASSEMBLY = T0 - timedelta(hours=2)
VP = Actor("U0VP", frozenset({"vp_engineering"}))


async def new_runtime(fake: FakeSlack, url: str, clock: Clock, text: str | None = None) -> Runtime:
    rt = await build_runtime(make_settings(fake, url), clock=clock, pace=FAST_PACE)
    source = text or plan_text()
    await rt.service.load(LoadedPlan(parse_plan(source, "test.yml"), source, "test.yml"))
    await rt.settle()
    return rt


@pytest.fixture
async def rt(fake_slack: FakeSlack, database_url: str, clock: Clock) -> AsyncIterator[Runtime]:
    runtime = await new_runtime(fake_slack, database_url, clock)
    yield runtime
    await runtime.close()


async def outbox(rt: Runtime) -> dict[str, repo.OutboxItem]:
    async with rt.service.sessions() as session:
        return {i.key: i for i in await repo.outbox(session=session, release_id="r1")}


async def timeline(rt: Runtime) -> list[Any]:
    async with rt.service.sessions() as session:
        return await repo.get_timeline(session=session, release_id="r1")


def posts_with_key(fake: FakeSlack, key: str) -> list[dict[str, Any]]:
    return [p for p in fake.posts() if (p.get("metadata") or {}).get("event_payload", {}).get("key") == key]


async def test_loading_a_plan_puts_every_message_in_the_outbox(rt: Runtime) -> None:
    items = await outbox(rt)
    assert {"announcement:advance", "announcement:assembly", "announcement:start"} <= set(items)
    status = [k for k in items if k.startswith("status:")]
    assert len(status) == 17  # every 15 minutes from T0 to T0+4h
    assert items["announcement:assembly"].due_at == ASSEMBLY
    assert items["announcement:assembly"].grace_seconds == 30 * 60


async def test_announcement_posts_on_time_with_metadata(rt: Runtime, fake_slack: FakeSlack, clock: Clock) -> None:
    clock.set(ASSEMBLY + timedelta(seconds=2))
    await rt.dispatcher.run_due()
    posted = posts_with_key(fake_slack, "announcement:assembly")
    assert len(posted) == 1
    message = posted[0]
    assert message["channel"] == "C0WAR" and "(delayed)" not in message["text"]
    assert message["metadata"] == {
        "event_type": "warroom_message",
        "event_payload": {"release": "r1", "key": "announcement:assembly"},
    }
    bk.validate(message["blocks"])
    items = await outbox(rt)
    assert items["announcement:assembly"].status == "sent" and items["announcement:assembly"].ts
    assert items["announcement:advance"].status == "skipped"  # T-7d was long past when the bot started
    events = [e for e in await timeline(rt) if e.subject == "announcement:assembly"]
    assert events[-1].kind == "message.posted" and events[-1].data["late_seconds"] == 2.0
    await rt.dispatcher.run_due()
    assert len(posts_with_key(fake_slack, "announcement:assembly")) == 1


async def test_missed_announcement_is_posted_late_and_marked_after_a_restart(
    fake_slack: FakeSlack, database_url: str, clock: Clock
) -> None:
    first = await new_runtime(fake_slack, database_url, clock)
    await first.close()  # the bot goes down before T-2h…
    clock.set(ASSEMBLY + timedelta(minutes=10))  # …and comes back 10 minutes after it
    second = await new_runtime(fake_slack, database_url, clock)
    await second.timekeeper.start()
    await second.settle()
    posted = posts_with_key(fake_slack, "announcement:assembly")
    assert len(posted) == 1 and posted[0]["text"].startswith("(delayed)")
    assert "(delayed)" in str(posted[0]["blocks"])
    event = [e for e in await timeline(second) if e.subject == "announcement:assembly"][-1]
    assert event.kind == "message.posted" and event.data["delayed"] is True
    await second.close()


async def test_announcement_past_its_grace_is_skipped_visibly(
    fake_slack: FakeSlack, database_url: str, clock: Clock
) -> None:
    first = await new_runtime(fake_slack, database_url, clock)
    await first.close()
    clock.set(ASSEMBLY + timedelta(minutes=45))  # grace is 30m
    second = await new_runtime(fake_slack, database_url, clock)
    await second.dispatcher.run_due()
    assert posts_with_key(fake_slack, "announcement:assembly") == []
    assert (await outbox(second))["announcement:assembly"].status == "skipped"
    skipped = [
        e for e in await timeline(second) if e.kind == "message.skipped" and e.subject == "announcement:assembly"
    ]
    assert skipped and "past its grace" in skipped[0].data["reason"]
    await second.close()


async def test_crash_between_posting_and_recording_does_not_post_twice(
    rt: Runtime, fake_slack: FakeSlack, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.set(ASSEMBLY)
    real_finish = repo.finish_sent

    class Killed(Exception):
        """The process dies here (raised in a delivery lane, so not SystemExit, which asyncio re-raises
        out of the event loop rather than out of the task)."""

    async def crash_on_sent(**kwargs: Any) -> None:
        if kwargs["sent"]:
            raise Killed("process killed before commit")
        await real_finish(**kwargs)

    monkeypatch.setattr(repo, "finish_sent", crash_on_sent)
    with pytest.raises(Killed):
        await rt.dispatcher.run_due()
    monkeypatch.setattr(repo, "finish_sent", real_finish)
    assert len(posts_with_key(fake_slack, "announcement:assembly")) == 1
    assert (await outbox(rt))["announcement:assembly"].status == "claimed"

    clock.advance(seconds=30)  # the claim is not stale yet: nobody touches it
    await rt.dispatcher.run_due()
    assert (await outbox(rt))["announcement:assembly"].status == "claimed"

    clock.advance(minutes=2)  # stale: look in the channel's history before sending again
    await rt.dispatcher.run_due()
    assert len(posts_with_key(fake_slack, "announcement:assembly")) == 1
    assert fake_slack.of("conversations.history")
    item = (await outbox(rt))["announcement:assembly"]
    assert item.status == "sent" and item.ts


async def test_shutting_down_waits_for_the_send_in_progress_to_be_recorded(
    fake_slack: FakeSlack, database_url: str, clock: Clock
) -> None:
    rt = await new_runtime(fake_slack, database_url, clock)
    clock.set(ASSEMBLY)
    fake_slack.hold, fake_slack.held = asyncio.Event(), frozenset({"chat.postMessage"})
    delivering = asyncio.create_task(rt.dispatcher.run_due())
    await fake_slack.wait_until(lambda: bool(fake_slack.waiting))  # the post is on its way to Slack
    closing = asyncio.create_task(rt.close())
    await asyncio.sleep(0.1)
    cut_off = closing.done()
    fake_slack.hold.set()
    assert not cut_off, "shutdown must not cut a send off before it is recorded"
    await asyncio.wait_for(closing, 10)
    await delivering
    assert await rt.dispatcher.run_due() == 0, "a drained dispatcher starts no new pass"
    assert (await outbox(rt))["announcement:assembly"].status == "sent"
    await rt.engine.dispose()


async def test_a_stale_claim_that_never_reached_slack_is_sent(
    rt: Runtime, fake_slack: FakeSlack, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.set(ASSEMBLY)
    async with rt.service.sessions() as session, session.begin():
        claimed = await repo.claim_due(
            session=session, now=clock(), claim_id="dead-process", stale_after=timedelta(minutes=1)
        )
    assert "announcement:assembly" in {c.key for c in claimed}
    clock.advance(minutes=2)
    await rt.dispatcher.run_due()
    assert len(posts_with_key(fake_slack, "announcement:assembly")) == 1


async def test_status_updates_run_only_while_the_release_is_in_progress(
    rt: Runtime, fake_slack: FakeSlack, clock: Clock
) -> None:
    clock.set(T0 + timedelta(minutes=15))
    await rt.dispatcher.run_due()
    assert not [p for p in fake_slack.posts("C0WAR") if "STATUS UPDATE" in p["text"]]  # no Go decision: not started
    await rt.service.run("r1", lambda r, p, now: start(r, p, VP, now, force_reason="test"))
    clock.set(T0 + timedelta(minutes=30, seconds=1))
    await rt.dispatcher.run_due()
    updates = [p for p in fake_slack.posts("C0WAR") if "STATUS UPDATE" in p["text"]]
    assert len(updates) == 1
    bk.validate(updates[0]["blocks"])
    assert "*Phase:*" in str(updates[0]["blocks"]) and "*ETA:*" in str(updates[0]["blocks"])


async def test_status_updates_stop_when_the_release_completes(rt: Runtime, fake_slack: FakeSlack, clock: Clock) -> None:
    from bot.lifecycle import complete

    clock.set(T0)
    await rt.service.run("r1", lambda r, p, now: start(r, p, VP, now, force_reason="test"))
    clock.set(T0 + timedelta(minutes=20))
    await rt.service.run("r1", lambda r, p, now: complete(r, p, VP, now, force_reason="test"))
    clock.set(T0 + timedelta(hours=5))
    await rt.dispatcher.run_due()
    items = await outbox(rt)
    later = [i for k, i in items.items() if k.startswith("status:") and i.due_at > T0 + timedelta(minutes=20)]
    assert later and all(i.status == "cancelled" for i in later)


async def test_release_starts_by_itself_at_t0_without_a_vote(
    fake_slack: FakeSlack, database_url: str, clock: Clock
) -> None:
    text = plan_text()
    text = text[: text.index("go_no_go:")] + text[text.index("escalation:") :]
    rt = await new_runtime(fake_slack, database_url, clock, text)
    clock.set(T0 + timedelta(seconds=1))
    await rt.dispatcher.run_due()
    release = await rt.service.get("r1")
    assert release.status is ReleaseStatus.IN_PROGRESS and release.started_at == T0 + timedelta(seconds=1)
    assert posts_with_key(fake_slack, "announcement:start")
    assert [p for p in fake_slack.posts("C0WAR") if "STATUS UPDATE" in p["text"]]  # the T0 update
    await rt.close()


async def test_moving_the_window_reschedules_everything_not_yet_sent(
    rt: Runtime, fake_slack: FakeSlack, database_url: str, clock: Clock
) -> None:
    clock.set(ASSEMBLY + timedelta(seconds=1))
    await rt.dispatcher.run_due()  # team assembly goes out
    later = T0 + timedelta(days=1)
    text = plan_text(start=later)
    await rt.service.load(LoadedPlan(parse_plan(text, "test.yml"), text, "test.yml"))
    items = await outbox(rt)
    assert items["announcement:assembly"].status == "sent"  # already out: not repeated
    assert items["announcement:start"].due_at == later and items["announcement:start"].status == "pending"
    old_status = [i for k, i in items.items() if k.startswith("status:") and i.due_at < later]
    assert old_status and all(i.status == "cancelled" for i in old_status)
    assert len([k for k, i in items.items() if k.startswith("status:") and i.status == "pending"]) == 17
    updated = [e for e in await timeline(rt) if e.kind == "release.plan_updated"]
    assert updated and "window_start" in updated[0].data


async def test_rate_limits_are_retried_and_failures_retried_later(
    rt: Runtime, fake_slack: FakeSlack, clock: Clock
) -> None:
    clock.set(ASSEMBLY)
    fake_slack.fail["chat.postMessage"] = [(429, {"ok": False, "error": "ratelimited"})]
    await rt.dispatcher.run_due()
    assert len(posts_with_key(fake_slack, "announcement:assembly")) == 1  # the client retried after Retry-After

    clock.set(T0 - timedelta(minutes=1))
    fake_slack.fail["chat.postMessage"] = [(429, {"ok": False, "error": "ratelimited"})] * 4
    await rt.service.run("r1", lambda r, p, now: start(r, p, VP, now, force_reason="test"))
    await rt.settle()
    item = next(i for k, i in (await outbox(rt)).items() if k == "release:started")
    assert item.status == "pending" and item.attempts == 1  # gave up for now, kept for later
    clock.advance(seconds=31)
    await rt.dispatcher.run_due()
    item = (await outbox(rt))["release:started"]
    assert item.status == "sent"


async def test_a_permanently_rejected_message_is_recorded_as_failed(
    rt: Runtime, fake_slack: FakeSlack, clock: Clock
) -> None:
    clock.set(ASSEMBLY)
    fake_slack.fail["chat.postMessage"] = [(200, {"ok": False, "error": "invalid_blocks"})]
    await rt.dispatcher.run_due()
    assert (await outbox(rt))["announcement:assembly"].status == "failed"
    failed = [e for e in await timeline(rt) if e.kind == "message.failed"]
    assert failed and failed[0].data["error"] == "invalid_blocks"


async def test_two_dispatchers_never_post_the_same_message_twice(
    fake_slack: FakeSlack, database_url: str, clock: Clock
) -> None:
    import asyncio

    one = await new_runtime(fake_slack, database_url, clock)
    two = await new_runtime(fake_slack, database_url, clock)
    clock.set(T0 + timedelta(hours=1))
    await asyncio.gather(one.dispatcher.run_due(), two.dispatcher.run_due(), one.dispatcher.run_due())
    keys = [(p.get("metadata") or {}).get("event_payload", {}).get("key") for p in fake_slack.posts()]
    assert keys and len(keys) == len(set(keys))
    await one.close()
    await two.close()


async def test_a_timer_that_already_fired_is_not_run_again_when_the_plan_is_loaded_at_a_restart(
    fake_slack: FakeSlack, database_url: str, clock: Clock
) -> None:
    first = await new_runtime(fake_slack, database_url, clock)
    clock.set(T0 + timedelta(seconds=1))
    await first.dispatcher.run_due()  # T0 without a Go decision: the release does not start
    await first.close()
    second = await new_runtime(fake_slack, database_url, clock)  # every start loads the plan again
    await second.dispatcher.run_due()
    not_started = [e for e in await timeline(second) if e.kind == "release.not_started"]
    assert len(not_started) == 1
    async with second.service.sessions() as session:
        pending = {t.key for t in await repo.timers(session=session, release_id="r1")}
    assert "release:t0" not in pending
    await second.close()


async def test_after_a_no_go_a_new_window_runs_the_go_live_again(
    rt: Runtime, fake_slack: FakeSlack, clock: Clock
) -> None:
    clock.set(T0 - timedelta(minutes=30))
    await rt.dispatcher.run_due()  # the vote opens on its timer
    assert len(posts_with_key(fake_slack, "gonogo:vote")) == 1
    no_go = DecideVote(Vote.NO_GO, "backup not verified")
    await rt.service.run("r1", lambda r, p, now: decide(r, p, VP, no_go, now))
    await rt.dispatcher.run_due()
    assert any("Deployment postponed" in p["text"] for p in fake_slack.posts("C0ANN"))

    clock.set(T0 + timedelta(hours=1))  # the team agrees on a new date and restarts the bot with it
    new_t0 = T0 + timedelta(days=7, hours=2)
    text = plan_text(start=new_t0)
    await rt.service.load(LoadedPlan(parse_plan(text, "test.yml"), text, "test.yml"))
    await rt.dispatcher.run_due()
    for channel in ("war_room", "announcements"):
        [notice] = posts_with_key(fake_slack, f"release:rescheduled:{channel}:attempt2")
        assert notice["text"].startswith("Go-live rescheduled") and "earlier decision no longer applies" in str(
            notice["blocks"]
        )
        bk.validate(notice["blocks"])
    items = await outbox(rt)
    assert items["announcement:advance:attempt2"].due_at == new_t0 - timedelta(days=7)
    assert items["announcement:start"].status == "cancelled"  # the old date's T0 notice never goes out

    clock.set(new_t0 - timedelta(days=7))
    await rt.dispatcher.run_due()
    assert len(posts_with_key(fake_slack, "announcement:advance:attempt2")) == 1, "T-7d again, for the new date"

    clock.set(new_t0 - timedelta(minutes=30))
    await rt.dispatcher.run_due()
    assert len(posts_with_key(fake_slack, "gonogo:vote:attempt2")) == 1, "a new vote opens on the new window"
    plan = rt.service.plan("r1")
    for user in ("U0RM", "U0DEV", "U0DBA", "U0QA"):
        voter = Actor(user, plan.role_of_person[user])
        await rt.service.run("r1", lambda r, p, now, a=voter: cast_vote(r, p, a, CastVote(Vote.GO), now))
    await rt.dispatcher.run_due()
    assert len(posts_with_key(fake_slack, "gonogo:decision:announcements:attempt2")) == 1

    clock.set(new_t0)
    await rt.dispatcher.run_due()
    release = await rt.service.get("r1")
    assert release.status is ReleaseStatus.IN_PROGRESS and release.attempt == 2
    assert len(posts_with_key(fake_slack, "announcement:start:attempt2")) == 1
    assert posts_with_key(fake_slack, "announcement:start") == []
    kinds = [e.kind for e in await timeline(rt)]
    assert kinds.index("vote.decided") < kinds.index("release.rescheduled") < kinds.index("release.started")


async def test_a_plan_another_replica_loaded_is_followed_at_the_next_sweep(
    fake_slack: FakeSlack, database_url: str, clock: Clock
) -> None:
    a = await new_runtime(fake_slack, database_url, clock)
    b = await new_runtime(fake_slack, database_url, clock)
    later = T0 + timedelta(days=1)
    text = plan_text(start=later)
    await a.service.load(LoadedPlan(parse_plan(text, "test.yml"), text, "test.yml"))  # SIGHUP or restart of A
    assert b.service.plan("r1").t0 == T0
    await b.timekeeper.sweep()
    assert b.service.plan("r1").t0 == later
    assert await b.service.follow_plans() == [], "nothing new the second time"
    await a.close()
    await b.close()


async def test_following_does_not_undo_a_plan_this_process_loaded_meanwhile(
    fake_slack: FakeSlack, database_url: str, clock: Clock
) -> None:
    a = await new_runtime(fake_slack, database_url, clock)
    b = await new_runtime(fake_slack, database_url, clock)
    other = plan_text(start=T0 + timedelta(days=1))
    await b.service.load(LoadedPlan(parse_plan(other, "test.yml"), other, "test.yml"))
    read, go = asyncio.Event(), asyncio.Event()
    real_sessions = a.service.sessions

    class ReadThenPause:
        """A's sweep reads the database, then waits while a SIGHUP load runs in the same process."""

        async def __aenter__(self) -> Any:
            self.inner = real_sessions()
            return await self.inner.__aenter__()

        async def __aexit__(self, *exc: object) -> None:
            await self.inner.__aexit__(*exc)
            read.set()
            await go.wait()

    a.service.sessions = lambda: ReadThenPause()  # type: ignore[assignment,misc,return-value]
    following = asyncio.create_task(a.service.follow_plans())
    await read.wait()
    a.service.sessions = real_sessions  # type: ignore[method-assign]
    newest = plan_text(start=T0 + timedelta(days=2))
    await a.service.load(LoadedPlan(parse_plan(newest, "test.yml"), newest, "test.yml"))
    go.set()
    assert await following == []
    assert a.service.plan("r1").t0 == T0 + timedelta(days=2)
    await a.close()
    await b.close()


async def test_a_plan_that_does_not_parse_here_is_refused_once_and_reported_once(
    fake_slack: FakeSlack, database_url: str, clock: Clock, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    a = await new_runtime(fake_slack, database_url, clock)
    b = await new_runtime(fake_slack, database_url, clock)
    elsewhere = tmp_path / "other-host"
    (elsewhere / "templates").mkdir(parents=True)
    text = "templates_dir: templates\n" + plan_text(start=T0 + timedelta(days=1))
    path = str(elsewhere / "plan.yml")
    await b.service.load(LoadedPlan(parse_plan(text, path), text, path))
    (elsewhere / "templates").rmdir()  # that folder exists only on the other replica's host
    for _ in range(3):
        await a.timekeeper.sweep()
    refused = [r for r in caplog.records if "does not parse here" in r.getMessage()]
    assert len(refused) == 1 and "templates_dir" in refused[0].getMessage()
    assert a.service.plan("r1").t0 == T0, "this replica keeps the plan it could parse"
    await a.close()
    await b.close()


async def test_a_message_that_cannot_be_rendered_is_retried_without_stopping_the_others(
    rt: Runtime, fake_slack: FakeSlack, clock: Clock
) -> None:
    clock.set(ASSEMBLY - timedelta(minutes=1))
    posts = (
        Post("war_room", "only_in_a_newer_plan", {}, key="custom:a"),
        Post("war_room", "inline", {"inline": "Still delivered"}, key="custom:b"),
    )
    await rt.service.run("r1", lambda r, p, now: Outcome(r, effects=posts))
    await rt.settle()
    await rt.dispatcher.run_due()
    assert [p["text"] for p in fake_slack.posts("C0WAR") if p["text"] == "Still delivered"]
    item = (await outbox(rt))["custom:a"]
    assert item.status == "pending" and "cannot render 'only_in_a_newer_plan'" in item.error
