"""A fake Slack Web API on loopback that records every call (SLACK_API_URL points the bot at it)."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import re
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
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
    if method == "views.publish" and (problem := _publish_refusal(args)) is not None:
        return problem
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


MAX_VIEW_BYTES = 250_000


def _publish_refusal(args: dict[str, Any]) -> str | None:
    """What Slack answers a views.publish it will not take: no `user_id`, a view that is not a Home tab
    (`type: home`, blocks required), two blocks with one block_id or two elements of a block with one action_id
    (`invalid_arguments`), a view over 250 kB (`view_too_large`)."""
    view = args.get("view")
    if not args.get("user_id") or not isinstance(view, dict) or view.get("type") != "home":
        return "invalid_arguments"
    blocks = view.get("blocks")
    if not isinstance(blocks, list):
        return "invalid_arguments"
    if len(json.dumps(view)) > MAX_VIEW_BYTES:
        return "view_too_large"
    block_ids = [b["block_id"] for b in blocks if isinstance(b, dict) and b.get("block_id")]
    if len(block_ids) != len(set(block_ids)):
        return "invalid_arguments"
    for block in blocks:
        elements = [*(block.get("elements") or []), *([block["accessory"]] if block.get("accessory") else [])]
        action_ids = [e["action_id"] for e in elements if isinstance(e, dict) and e.get("action_id")]
        if len(action_ids) != len(set(action_ids)):
            return "invalid_arguments"
    return None


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    at: float
    peer: Any = None
    """The caller's address and port, where recorded: calls on one kept-alive connection share it."""


@dataclass
class UploadedFile:
    """A file as Slack keeps it through the external upload flow: asked for, uploaded, completed (shared)."""

    id: str
    filename: str
    length: int
    alt_txt: str | None = None
    content: bytes | None = None
    completed: bool = False
    title: str = ""
    shared_in: str | None = None
    initial_comment: str | None = None
    thread_ts: str | None = None


OutageKind = Literal["500", "reset", "429", "hang"]


@dataclass
class MethodOutage:
    """`500`: HTTP 500; `reset`: the connection is reset; `429`: ratelimited with Retry-After; `hang`: no answer."""

    kind: OutageKind
    until: float | None = None
    """`time.monotonic()` at which it ends by itself; None: until `FakeSlack.restore`."""
    retry_after: int = 1

    def active(self) -> bool:
        return self.until is None or time.monotonic() < self.until


@dataclass
class Conversation:
    """A channel as Slack keeps it. An ID the fake was not told about is a public channel the bot is in."""

    private: bool = False
    archived: bool = False
    member: bool = True


@dataclass
class RateLimit:
    """Slack's limits: `per_second` with bursts of `burst`, per method (per workspace) or per channel.

    chat.postMessage allows about one message per second per channel, short bursts tolerated.
    """

    per_second: float
    burst: int = 1
    per_channel: bool = False


@dataclass
class Outage:
    """Slack unwell until `until` (time.monotonic()): `kind` is "500", "reset", "429" or "hang"."""

    kind: str
    until: float
    methods: frozenset[str] | None = None
    retry_after: int = 1


MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_TEXT = 40000
DEFAULT_SCOPES = frozenset(
    {"chat:write", "chat:write.public", "channels:history", "groups:history", "im:history", "files:write"}
)


@dataclass
class FakeSlack:
    """Answers like Slack for the methods the bot uses; `fail` queues error answers per method.

    Like Slack: `conversations.history` lists thread parents only (replies come from
    `conversations.replies`); posting to an archived channel answers `is_archived`, to an unknown one
    `channel_not_found`, to one the bot is not in `not_in_channel` (public channels accept posts anyway
    with `chat:write.public`); over-limit blocks answer `invalid_blocks`. Faults are injected with
    `outage`, `rate_limits`, `slow` and `lose_answer`.
    """

    channels: dict[str, str] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    members: dict[str, str] = field(default_factory=dict)
    """Display names people type after `@` → user IDs (slash-command text mentions them)."""
    handles: dict[str, str] = field(default_factory=dict)
    """User-group handles people type after `@` → group IDs."""
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
    held_channels: frozenset[str] = frozenset()
    """Posts (chat.postMessage) to these channels wait for `hold` too: one slow channel among quick ones."""
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    """Open Socket Mode connections (apps.connections.open hands out their URL)."""
    conversations: dict[str, Conversation | None] = field(default_factory=dict)
    """Channel IDs with properties other than the default; None: no such channel."""
    scopes: frozenset[str] = DEFAULT_SCOPES
    rate_limits: dict[str, RateLimit] = field(default_factory=dict)
    outages: list[Outage] = field(default_factory=list)
    slow: dict[str, float] = field(default_factory=dict)
    """Seconds a method takes to answer (after it took effect)."""
    lost: dict[str, list[str]] = field(default_factory=dict)
    """Per method, answers lost after the call took effect: "reset" or "500"."""
    _buckets: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    refuse: dict[str, str] = field(default_factory=dict)
    """Channel ID → the error every post to it answers (a permanent refusal aimed at one channel)."""
    method_outages: dict[str, MethodOutage] = field(default_factory=dict)
    """Methods failing in one way while their outage lasts (see `method_outage`)."""
    files: dict[str, UploadedFile] = field(default_factory=dict)
    """Files by ID, from files.getUploadURLExternal on: their bytes once uploaded, where they were shared."""
    _file_ids: itertools.count = field(default_factory=lambda: itertools.count(1))  # type: ignore[type-arg]

    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_post("/api/{method}", self._handle)
        app.router.add_get("/api/{method}", self._handle)
        app.router.add_post("/webhook/{hook}", self._webhook)
        app.router.add_post("/upload/v1/{file_id}", self._upload)
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
        for connection in list(self.sockets):
            await connection.close()
        if self._runner:
            await self._runner.cleanup()

    # --- what tests look at -------------------------------------------------------------------------------

    def of(self, method: str) -> list[dict[str, Any]]:
        return [c.args for c in self.calls if c.method == method]

    def homes(self, user: str) -> list[dict[str, Any]]:
        """The Home views published for `user`, oldest first."""
        return [c["view"] for c in self.of("views.publish") if c.get("user_id") == user]

    def posts(self, channel: str | None = None) -> list[dict[str, Any]]:
        return [a for a in self.of("chat.postMessage") if channel is None or a.get("channel") == channel]

    @staticmethod
    def im_of(user: str) -> str:
        """The bot's direct-message channel with `user`, as conversations.open names it."""
        return "D" + user[1:]

    def shared_files(self, channel: str | None = None) -> list[UploadedFile]:
        """Files completeUploadExternal shared (in `channel`), in the order they were shared."""
        return [f for f in self.files.values() if f.shared_in and (channel is None or f.shared_in == channel)]

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

    # --- outages: a method failing in one way for a while -------------------------------------------------

    def method_outage(
        self, method: str, kind: OutageKind, *, seconds: float | None = None, retry_after: int = 1
    ) -> None:
        """Make `method` alone fail as `kind` for `seconds` (None: until `restore`); attempts are recorded as
        `METHOD:outage`. (`outage` is the same for every method, or a set of them, for a period.)"""
        self.method_outages[method] = MethodOutage(
            kind, None if seconds is None else time.monotonic() + seconds, retry_after
        )

    def restore(self, method: str) -> None:
        """End the outage of `method`: it answers normally again."""
        self.method_outages.pop(method, None)

    async def _outage_answer(self, method: str, args: dict[str, Any], request: web.Request) -> web.Response | None:
        outage = self.method_outages.get(method)
        if outage is None or not outage.active():
            return None
        await self._record(method + ":outage", args)
        if outage.kind == "hang":
            while self.method_outages.get(method) is outage and outage.active():  # noqa: ASYNC110 - either end may come
                await asyncio.sleep(0.05)
            return web.json_response({"ok": False, "error": "request_timeout"}, status=504)
        if outage.kind == "reset":
            transport = request.transport
            sock = transport.get_extra_info("socket") if transport is not None else None
            if sock is not None:  # SO_LINGER 0: closing sends a TCP RST, as a dropped connection does
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if transport is not None:
                transport.abort()
            return web.Response(status=500)  # never reaches the client: the connection is gone
        if outage.kind == "429":
            headers = {"Retry-After": str(outage.retry_after)}
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers=headers)
        return web.Response(status=500, text="Internal Server Error")

    # --- the server ---------------------------------------------------------------------------------------

    async def _record(self, method: str, args: dict[str, Any], peer: Any = None) -> None:
        slow_channel = method == "chat.postMessage" and args.get("channel") in self.held_channels
        if self.hold is not None and (method in self.held or slow_channel):
            self.waiting.append(method)
            await self._notify()
            await self.hold.wait()
        self.calls.append(Call(method, args, time.time(), peer))
        await self._notify()

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        """Socket Mode as Slack runs it: `hello` on connect, then envelopes out and their acks back."""
        socket = web.WebSocketResponse()  # answers the client's pings, as Slack does
        await socket.prepare(request)
        self.sockets.append(socket)
        await socket.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A111"}})
        await self._record("socket.connected", {})
        async for message in socket:  # the bot's acks, recorded as `socket.ack`
            if message.type == WSMsgType.TEXT:
                await self._record("socket.ack", json.loads(message.data))
        self.sockets.remove(socket)
        return socket

    async def send_envelope(self, envelope_id: str, kind: str, payload: dict[str, Any]) -> None:
        """Deliver a request over Socket Mode as Slack does (e.g. kind `slash_commands`)."""
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload, "accepts_response_payload": True}
        await self.sockets[-1].send_json(envelope)

    async def _webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        if refused := refusal("respond", body):
            await self._record("respond:refused", body)
            return web.Response(status=400, text=refused)
        hook = request.match_info["hook"]  # `webhook_url` is "respond"; other names tell replies apart
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        await self._record("respond" if hook == "respond" else f"respond:{hook}", body, peer)
        return web.Response(text="ok")

    async def _upload(self, request: web.Request) -> web.Response:
        """The upload URL files.getUploadURLExternal hands out: the raw bytes, of the length it was issued
        for (`method_outage("files.upload_bytes", …)` makes it fail); Slack answers 200 `OK - LENGTH`."""
        file_id = request.match_info["file_id"]
        known = self.files.get(file_id)
        body = await request.read()
        if (failure := await self._outage_answer("files.upload_bytes", {"file_id": file_id}, request)) is not None:
            return failure
        await self._record("files.upload_bytes", {"file_id": file_id, "length": len(body)})
        if known is None or known.completed:
            return web.Response(status=404, text="Not Found")
        if len(body) != known.length:
            return web.Response(status=400, text=f"length {len(body)} is not the {known.length} the URL was issued for")
        known.content = bytes(body)
        return web.Response(text=f"OK - {len(body)}")

    def _get_upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        filename, length = str(args.get("filename") or ""), str(args.get("length") or "")
        if "files:write" not in self.scopes:
            return {"ok": False, "error": "missing_scope", "needed": "files:write"}
        if not filename or not length.isdigit() or int(length) <= 0:
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._file_ids):08d}"
        self.files[file_id] = UploadedFile(file_id, filename, int(length), alt_txt=args.get("alt_txt"))
        return {"ok": True, "file_id": file_id, "upload_url": self.url.replace("/api/", f"/upload/v1/{file_id}")}

    def _complete_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        """files.completeUploadExternal: every file must be one asked for and uploaded, and completed once
        (`file_not_found`, "Could not find the file from the upload ticket"); sharing needs membership."""
        try:
            wanted = json.loads(args["files"]) if isinstance(args.get("files"), str) else args.get("files")
        except (KeyError, json.JSONDecodeError):
            return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(wanted, list) or not wanted or not all(isinstance(f, dict) and "id" in f for f in wanted):
            return {"ok": False, "error": "invalid_arguments"}
        found = [self.files.get(str(f["id"])) for f in wanted]
        if any(f is None or f.content is None or f.completed for f in found):
            return {"ok": False, "error": "file_not_found"}
        channel = args.get("channel_id")
        if channel:
            conversation = self._conversation(str(channel))
            if conversation is None:
                return {"ok": False, "error": "channel_not_found"}
            if conversation.archived:
                return {"ok": False, "error": "is_archived"}
            if not conversation.member:
                return {"ok": False, "error": "not_in_channel"}
        shared = []
        for spec, file in zip(wanted, found, strict=True):
            assert file is not None
            file.completed = True
            file.title = str(spec.get("title") or file.filename)
            file.shared_in = str(channel) if channel else None
            file.initial_comment = args.get("initial_comment")
            file.thread_ts = args.get("thread_ts")
            shared.append({"id": file.id, "title": file.title})
        if channel:
            ts = f"{1700000000 + next(self._ts)}.000100"
            message = {"ts": ts, "text": args.get("initial_comment") or "", "files": shared, "metadata": None}
            self.messages.setdefault(str(channel), []).append(message)
        return {"ok": True, "files": shared}

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
        if (failure := await self._outage_answer(method, args, request)) is not None:
            return failure
        faulty = await self._fault(request, method, args)
        if faulty is not None:
            return faulty
        queued = self.fail.get(method)
        if queued:
            status, body = queued.pop(0)
            await self._record(method + ":failed", args)
            headers = {"Retry-After": str(self.retry_after.get(method, 0))} if status == 429 else {}
            return web.json_response(body, status=status, headers=headers)
        if refused := refusal(method, args):
            await self._record(method + ":refused", args)
            return web.json_response({"ok": False, "error": refused})
        await self._record(method, args)
        answer = self._answer(method, args)
        if method in self.slow:
            await asyncio.sleep(self.slow[method])
        if self.lost.get(method):
            how = self.lost[method].pop(0)
            await self._record(method + ":answer_lost", args)
            return self._broken(request, how)
        return web.json_response(answer)

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "apps.connections.open":
            return {"ok": True, "url": self.url.replace("http://", "ws://").replace("/api/", "/socket")}
        if method == "auth.test":
            return {"ok": True, "user_id": "UBOT", "bot_id": "BBOT", "team_id": "T111", "team": "Test"}
        if method == "chat.postMessage":
            channel, error = self._conversation_for_post(str(args["channel"]))
            error = error or self.refuse.get(channel, "") or self._message_error(args)
            if error:
                return {"ok": False, "error": error}
            ts = f"{1700000000 + next(self._ts)}.000100"
            message: dict[str, Any] = {
                "ts": ts,
                "text": args.get("text"),
                "blocks": args.get("blocks"),
                "metadata": args.get("metadata"),
            }
            thread_ts = args.get("thread_ts")
            parent = self._message(channel, str(thread_ts)) if thread_ts else None
            if parent is not None:
                message["thread_ts"] = parent["ts"]
                parent["thread_ts"] = parent["ts"]
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                parent["latest_reply"] = ts
            self.messages.setdefault(channel, []).append(message)
            return {"ok": True, "channel": channel, "ts": ts, "message": message}
        if method == "apps.connections.open":
            return {"ok": True, "url": self.url.replace("http://", "ws://").replace("/api/", "/socket")}
        if method == "chat.update":
            channel, _ = self._conversation_for_post(str(args["channel"]))
            updated = self._message(channel, str(args["ts"]))
            if updated is None:
                return {"ok": False, "error": "message_not_found"}  # as Slack answers an unknown ts
            updated.update(text=args.get("text"), blocks=args.get("blocks"))
            return {"ok": True, "channel": args["channel"], "ts": args["ts"]}
        if method == "conversations.list":
            return {
                "ok": True,
                "channels": [{"id": cid, "name": name} for name, cid in self.channels.items()],
                "response_metadata": {"next_cursor": ""},
            }
        if method == "conversations.history":
            channel = str(args["channel"])
            error = self._readable(channel)
            if error:
                return {"ok": False, "error": error}
            # thread parents and unthreaded messages only, newest first; replies are in conversations.replies
            found = [m for m in self.messages.get(channel, []) if m.get("thread_ts") in {None, m["ts"]}]
            return {
                "ok": True,
                "messages": list(reversed(found)),
                "has_more": False,
                "response_metadata": {"next_cursor": ""},
            }
        if method == "conversations.replies":
            channel = str(args["channel"])
            error = self._readable(channel)
            if error:
                return {"ok": False, "error": error}
            named = self._message(channel, str(args.get("ts")))
            if named is None:
                return {"ok": False, "error": "thread_not_found"}
            parent = self._message(channel, str(named.get("thread_ts") or named["ts"])) or named
            thread = [m for m in self.messages.get(channel, []) if m.get("thread_ts") == parent["ts"] != m["ts"]]
            return {
                "ok": True,
                "messages": [parent, *thread],  # the parent first, then its replies oldest first
                "has_more": False,
                "response_metadata": {"next_cursor": ""},
            }
        if method == "conversations.join":
            channel = str(args["channel"])
            conversation = self._conversation(channel)
            if conversation is None:
                return {"ok": False, "error": "channel_not_found"}
            if conversation.archived:
                return {"ok": False, "error": "is_archived"}
            if conversation.private:
                return {"ok": False, "error": "method_not_supported_for_channel_type"}
            conversation.member = True
            self.conversations[channel] = conversation
            return {"ok": True, "channel": {"id": channel, "is_member": True}}
        if method == "usergroups.users.list":
            group = self.groups.get(str(args.get("usergroup")))
            if group is None:
                return {"ok": False, "error": "paid_teams_only"}
            return {"ok": True, "users": group}
        if method in {"views.open", "views.push"} and args.get("trigger_id") in self.expired_triggers:
            return {"ok": False, "error": "expired_trigger_id"}
        if method in {"views.open", "views.publish", "views.update", "views.push"}:
            return {"ok": True, "view": {"id": "V123", **(args.get("view") or {})}}
        if method == "files.getUploadURLExternal":
            return self._get_upload_url(args)
        if method == "files.completeUploadExternal":
            return self._complete_upload(args)
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": "1.1"}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": self.im_of(str(args["users"]))}}
        return {"ok": True}

    # --- Slack's rules for channels and messages ---------------------------------------------------------

    def _conversation(self, channel: str) -> Conversation | None:
        if channel in self.conversations:
            return self.conversations[channel]
        if channel[:1] in {"C", "G"} and channel[1:].isalnum() and channel.isupper():
            return Conversation(private=channel.startswith("G"))
        return None

    def _conversation_for_post(self, ref: str) -> tuple[str, str]:
        """(channel ID, error) for a post to `ref`: an ID, a `#name`, a user (their DM) or a DM channel."""
        if ref.startswith("#") or not ref[:1].isupper():
            name = ref.lstrip("#")
            if name not in self.channels:
                return ref, "channel_not_found"
            ref = self.channels[name]
        if ref[:1] in {"U", "W"}:
            return self.im_of(ref), ""  # Slack answers a post to a user with the DM channel's ID
        if ref[:1] == "D":
            return ref, ""
        conversation = self._conversation(ref)
        if conversation is None:
            return ref, "channel_not_found"
        if conversation.archived:
            return ref, "is_archived"
        if not conversation.member and (conversation.private or "chat:write.public" not in self.scopes):
            return ref, "not_in_channel"
        return ref, ""

    def _readable(self, channel: str) -> str:
        """The error reading `channel`'s history answers, or ""."""
        if channel[:1] == "D":
            return "" if "im:history" in self.scopes else "missing_scope"
        conversation = self._conversation(channel)
        if conversation is None:
            return "channel_not_found"
        if not conversation.member:
            return "not_in_channel"
        scope = "groups:history" if conversation.private else "channels:history"
        return "" if scope in self.scopes else "missing_scope"

    def _message(self, channel: str, ts: str) -> dict[str, Any] | None:
        return next((m for m in self.messages.get(channel, []) if m["ts"] == ts), None)

    @staticmethod
    def _message_error(args: dict[str, Any]) -> str:
        """What Slack answers a message it will not take: too many blocks, a section too long, no text."""
        blocks = args.get("blocks")
        text = args.get("text")
        if not blocks and not text:
            return "no_text"
        if text and len(str(text)) > MAX_TEXT:
            return "msg_too_long"
        if blocks:
            if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
                return "invalid_blocks"
            for block in blocks:
                section = (block.get("text") or {}).get("text", "") if isinstance(block, dict) else ""
                if not isinstance(block, dict) or "type" not in block or len(section) > MAX_SECTION_TEXT:
                    return "invalid_blocks"
        return ""

    # --- injected faults -----------------------------------------------------------------------------------

    def outage(self, kind: str, seconds: float, *, methods: set[str] | None = None, retry_after: int = 1) -> None:
        """From now for `seconds`: "500", "reset", "429" (with Retry-After) or "hang" (no answer, then a reset)."""
        assert kind in {"500", "reset", "429", "hang"}, kind
        self.outages.append(
            Outage(kind, time.monotonic() + seconds, frozenset(methods) if methods else None, retry_after)
        )

    def lose_answer(self, method: str, how: str = "reset", count: int = 1) -> None:
        """The next `count` calls of `method` take effect, but the client gets a reset or a 500 instead."""
        assert how in {"reset", "500"}, how
        self.lost.setdefault(method, []).extend([how] * count)

    async def _fault(self, request: web.Request, method: str, args: dict[str, Any]) -> web.StreamResponse | None:
        """An outage or a rate limit answers instead of Slack (recorded as `method:KIND`), or None."""
        now = time.monotonic()
        self.outages = [o for o in self.outages if o.until > now]
        for outage in self.outages:
            if outage.methods is None or method in outage.methods:
                await self._record(f"{method}:{outage.kind}", args)
                if outage.kind == "429":
                    return self._rate_limited(outage.retry_after)
                if outage.kind == "hang":
                    await asyncio.sleep(max(0.0, outage.until - now))
                    return self._broken(request, "reset")
                return self._broken(request, outage.kind)
        limit = self.rate_limits.get(method)
        if limit is None:
            return None
        key = (method, str(args.get("channel", "")) if limit.per_channel else "")
        tokens, at = self._buckets.get(key, (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + (now - at) * limit.per_second)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            await self._record(f"{method}:429", args)
            return self._rate_limited(max(1, math.ceil((1 - tokens) / limit.per_second)))
        self._buckets[key] = (tokens - 1, now)
        return None

    @staticmethod
    def _rate_limited(retry_after: int) -> web.Response:
        return web.json_response(
            {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": str(retry_after)}
        )

    @staticmethod
    def _broken(request: web.Request, how: str) -> web.Response:
        """A 500, or the connection reset (RST) before any answer."""
        if how == "500":
            return web.Response(status=500, text="Internal Server Error")
        transport = request.transport
        assert transport is not None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        return web.Response(status=500)
