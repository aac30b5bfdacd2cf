"""A fake Slack Web API on loopback that records every call (SLACK_API_URL points the bot at it)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    at: float


@dataclass
class FakeSlack:
    """Answers like Slack for the methods the bot uses; `fail` queues error answers per method."""

    channels: dict[str, str] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    fail: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    retry_after: dict[str, int] = field(default_factory=dict)
    expired_triggers: set[str] = field(default_factory=set)
    """trigger_ids views.open refuses with expired_trigger_id (Slack accepts one for 3 s after the interaction)."""
    """The Retry-After (seconds) a queued 429 of that method carries, as Slack's rate limits do; else 0."""
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))  # type: ignore[type-arg]
    url: str = ""
    _runner: web.AppRunner | None = None
    _changed: asyncio.Condition | None = None
    hold: asyncio.Event | None = None
    held: frozenset[str] = frozenset()
    """Calls to the `held` methods wait for `hold` before being recorded and answered."""
    waiting: list[str] = field(default_factory=list)
    """Methods of the calls that started waiting for `hold`."""

    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_post("/api/{method}", self._handle)
        app.router.add_get("/api/{method}", self._handle)
        app.router.add_post("/webhook/{hook}", self._webhook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/api/"
        self._changed = asyncio.Condition()
        return self

    @property
    def webhook_url(self) -> str:
        return self.url.replace("/api/", "/webhook/respond")

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    # --- what tests look at -------------------------------------------------------------------------------

    def of(self, method: str) -> list[dict[str, Any]]:
        return [c.args for c in self.calls if c.method == method]

    def posts(self, channel: str | None = None) -> list[dict[str, Any]]:
        return [a for a in self.of("chat.postMessage") if channel is None or a.get("channel") == channel]

    @staticmethod
    def im_of(user: str) -> str:
        """The bot's direct-message channel with `user`, as conversations.open names it."""
        return "D" + user[1:]

    def responses(self) -> list[dict[str, Any]]:
        return self.of("respond")

    async def wait_for(self, method: str, count: int = 1, within: float = 5.0) -> list[dict[str, Any]]:
        """Wait until `method` was called at least `count` times."""
        await self.wait_until(lambda: len(self.of(method)) >= count, within)
        return self.of(method)

    async def wait_until(self, condition: Callable[[], bool], within: float = 5.0) -> None:
        """Wait until `condition` holds, checking it after every recorded call."""
        assert self._changed is not None
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(condition), within)

    # --- the server ---------------------------------------------------------------------------------------

    async def _record(self, method: str, args: dict[str, Any]) -> None:
        if self.hold is not None and method in self.held:
            self.waiting.append(method)
            await self._notify()
            await self.hold.wait()
        self.calls.append(Call(method, args, time.time()))
        await self._notify()

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    async def _webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        await self._record("respond", body)
        return web.Response(text="ok")

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw = await request.text() if request.method == "POST" else request.query_string
        if request.method == "POST" and request.content_type == "application/json":
            args = json.loads(raw or "{}")
        else:
            args = dict(parse_qsl(raw))
            for key in ("blocks", "metadata", "view"):
                if isinstance(args.get(key), str):
                    args[key] = json.loads(args[key])
        if request.method == "POST":
            args = {**dict(request.query), **args}  # the SDK sends some methods' arguments as query parameters
        queued = self.fail.get(method)
        if queued:
            status, body = queued.pop(0)
            await self._record(method + ":failed", args)
            headers = {"Retry-After": str(self.retry_after.get(method, 0))} if status == 429 else {}
            return web.json_response(body, status=status, headers=headers)
        await self._record(method, args)
        return web.json_response(self._answer(method, args))

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "user_id": "UBOT", "bot_id": "BBOT", "team_id": "T111", "team": "Test"}
        if method == "chat.postMessage":
            channel = self.channels.get(str(args["channel"]).lstrip("#"), str(args["channel"]))
            if channel[:1] in {"U", "W"}:
                channel = self.im_of(channel)  # Slack answers a post to a user with the DM channel's ID
            ts = f"{1700000000 + next(self._ts)}.000100"
            message = {
                "ts": ts,
                "text": args.get("text"),
                "blocks": args.get("blocks"),
                "metadata": args.get("metadata"),
            }
            self.messages.setdefault(channel, []).append(message)
            return {"ok": True, "channel": channel, "ts": ts, "message": message}
        if method == "chat.update":
            return {"ok": True, "channel": args["channel"], "ts": args["ts"]}
        if method == "conversations.list":
            return {
                "ok": True,
                "channels": [{"id": cid, "name": name} for name, cid in self.channels.items()],
                "response_metadata": {"next_cursor": ""},
            }
        if method == "conversations.history":
            found = list(reversed(self.messages.get(str(args["channel"]), [])))
            return {
                "ok": True,
                "messages": found,
                "has_more": False,
                "response_metadata": {"next_cursor": ""},
            }
        if method == "usergroups.users.list":
            group = self.groups.get(str(args.get("usergroup")))
            if group is None:
                return {"ok": False, "error": "paid_teams_only"}
            return {"ok": True, "users": group}
        if method in {"views.open", "views.push"} and args.get("trigger_id") in self.expired_triggers:
            return {"ok": False, "error": "expired_trigger_id"}
        if method in {"views.open", "views.publish", "views.update", "views.push"}:
            return {"ok": True, "view": {"id": "V123", **(args.get("view") or {})}}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": "1.1"}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": self.im_of(str(args["users"]))}}
        return {"ok": True}
