"""A fake Slack Web API on loopback that records every call (SLACK_API_URL points the bot at it)."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

_TYPED_MENTION = re.compile(r"(?<![\w<])([@#])([\w.-]+)")
_TYPED_URL = re.compile(r"(?<![\w<|])(https?://[^\s<>]+)")
_BROADCASTS = {"here", "channel", "everyone"}


def slash_command_text(
    typed: str,
    *,
    should_escape: bool,
    members: dict[str, str] | None = None,
    channels: dict[str, str] | None = None,
    groups: dict[str, str] | None = None,
) -> str:
    """The `text` Slack sends for what a person typed after a slash command.

    With the manifest's `should_escape: true` ("Escape channels, users, and links sent to your app")
    Slack escapes `&`, `<` and `>` and turns what it recognises into tokens: `@name` of a member into
    `<@U…|name>`, `#name` of a channel into `<#C…|name>`, `@here`/`@channel`/`@everyone` into `<!here>`…,
    `@handle` of a user group into `<!subteam^S…|@handle>`, a URL into `<URL>`. Without it the text
    arrives as typed (`@name` stays a name).
    """
    if not should_escape:
        return typed
    members, channels, groups = members or {}, channels or {}, groups or {}
    text = typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def token(match: re.Match[str]) -> str:
        sigil, name = match.group(1), match.group(2)
        if sigil == "#":
            return f"<#{channels[name]}|{name}>" if name in channels else match.group(0)
        if name in _BROADCASTS:
            return f"<!{name}>"
        if name in members:
            return f"<@{members[name]}|{name}>"
        if name in groups:
            return f"<!subteam^{groups[name]}|@{name}>"
        return match.group(0)

    text = _TYPED_URL.sub(lambda m: f"<{m.group(1)}>", text)
    return _TYPED_MENTION.sub(token, text)


MAX_TEXT = 40000
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100


def refusal(method: str, args: dict[str, Any]) -> str | None:
    """The error Slack answers for a payload over its limits or with blocks it rejects, else None:
    `msg_too_long` (text over 40,000 characters), `invalid_blocks` (a message), `invalid_arguments` (a
    view). Blocks are checked by slack_sdk's models, which carry Slack's per-field limits."""
    from slack_sdk.models.blocks import Block

    view = method.startswith("views.")
    if method not in {"chat.postMessage", "chat.update", "chat.postEphemeral", "respond"} and not view:
        return None
    if len(str(args.get("text") or "")) > MAX_TEXT:
        return "msg_too_long"
    blocks = (args.get("view") or {}).get("blocks") if view else args.get("blocks")
    if not blocks:
        return None
    if len(blocks) > (MAX_VIEW_BLOCKS if view else MAX_MESSAGE_BLOCKS):
        return "invalid_arguments" if view else "invalid_blocks"
    try:
        for raw in blocks:
            block = Block.parse(raw)
            assert block is not None
            block.validate_json()
    except Exception:
        return "invalid_arguments" if view else "invalid_blocks"
    return None


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
    members: dict[str, str] = field(default_factory=dict)
    """Display names people type after `@` → user IDs (slash-command text mentions them)."""
    handles: dict[str, str] = field(default_factory=dict)
    """User-group handles people type after `@` → group IDs."""
    calls: list[Call] = field(default_factory=list)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    fail: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))  # type: ignore[type-arg]
    url: str = ""
    _runner: web.AppRunner | None = None
    _changed: asyncio.Condition | None = None
    hold: asyncio.Event | None = None
    held: frozenset[str] = frozenset()
    """Calls to the `held` methods wait for `hold` before being recorded and answered."""
    waiting: list[str] = field(default_factory=list)
    """Methods of the calls that started waiting for `hold`."""
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    """Open Socket Mode connections (apps.connections.open hands out their URL)."""

    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_post("/api/{method}", self._handle)
        app.router.add_get("/api/{method}", self._handle)
        app.router.add_post("/webhook/{hook}", self._webhook)
        app.router.add_get("/socket", self._socket)
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
        for socket in list(self.sockets):
            await socket.close()
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

    async def send_envelope(self, envelope: dict[str, Any]) -> None:
        """Deliver a Socket Mode envelope (slash_commands, interactive, events_api) on the newest connection."""
        await self.sockets[-1].send_json(envelope)

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        """Socket Mode as Slack runs it: `hello` on connect, then envelopes out and their acks back."""
        socket = web.WebSocketResponse()  # answers the client's pings, as Slack does
        await socket.prepare(request)
        self.sockets.append(socket)
        await socket.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A111"}})
        await self._record("socket.hello", {})
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                await self._record("socket.ack", json.loads(message.data))
        self.sockets.remove(socket)
        return socket

    async def _webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        if refused := refusal("respond", body):
            await self._record("respond:refused", body)
            return web.Response(status=400, text=refused)
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
            headers = {"Retry-After": "0"} if status == 429 else {}
            return web.json_response(body, status=status, headers=headers)
        if refused := refusal(method, args):
            await self._record(method + ":refused", args)
            return web.json_response({"ok": False, "error": refused})
        await self._record(method, args)
        return web.json_response(self._answer(method, args))

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "apps.connections.open":
            return {"ok": True, "url": self.url.replace("http://", "ws://").replace("/api/", "/socket")}
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
        if method in {"views.open", "views.publish", "views.update", "views.push"}:
            return {"ok": True, "view": {"id": "V123", **(args.get("view") or {})}}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": "1.1"}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": self.im_of(str(args["users"]))}}
        return {"ok": True}
