"""One pooled HTTP session: Slack Web API calls reuse kept-alive connections, and shutdown closes it."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from bot.app import Runtime
from bot.slack import web_client


async def test_web_api_calls_share_one_kept_alive_connection() -> None:
    peers: list[Any] = []

    async def answer(request: web.Request) -> web.Response:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))
        return web.json_response({"ok": True, "channel": "C1", "ts": "1.000001"})

    app = web.Application()
    app.router.add_post("/api/{method}", answer)
    server = TestServer(app)
    await server.start_server()
    try:
        async with ClientSession() as http:
            client = web_client("xoxb-test", str(server.make_url("/api/")), session=http)
            for i in range(5):
                await client.chat_postMessage(channel="C1", text=f"post {i}")
    finally:
        await server.close()
    assert len(peers) == 5
    assert len(set(peers)) == 1, f"each call opened a connection of its own: {peers}"


async def test_shutdown_closes_the_pooled_session(runtime: Runtime) -> None:
    assert runtime.client.session is runtime.http
    assert not runtime.http.closed
    await runtime.close()
    assert runtime.http.closed
