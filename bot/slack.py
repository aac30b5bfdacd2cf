"""The Slack Web API client, the start-up token check, and the look-ups that need the client (channel names,
user-group members)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.context.respond.internals import _build_message
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.models.attachments import Attachment
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient
from slack_sdk.webhook.webhook_response import WebhookResponse

from bot.domain import Actor
from bot.plan import Plan

log = logging.getLogger(__name__)


def api_error(exc: SlackApiError) -> str:
    """The `error` code of a failed Web API call, whatever shape the response body had."""
    data = getattr(exc.response, "data", None)
    if isinstance(data, dict):
        return str(data.get("error") or exc)
    return f"HTTP {getattr(exc.response, 'status_code', '?')}"


def web_client(
    token: str | None, base_url: str, *, max_retries: int = 3, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    """A client that retries 429 (honouring Retry-After), 5xx and connection resets with backoff.

    With `session`, every call reuses its kept-alive connections instead of opening one per call.
    """
    client = AsyncWebClient(token=token, base_url=base_url, timeout=15, session=session)
    client.retry_handlers.extend(
        [
            AsyncRateLimitErrorRetryHandler(max_retry_count=max_retries),
            AsyncServerErrorRetryHandler(max_retry_count=max_retries),
        ]
    )
    # the connection handler is installed by default; make it as patient as the others
    for handler in client.retry_handlers:
        if isinstance(handler, AsyncConnectionErrorRetryHandler):
            handler.max_retry_count = max_retries
    return client


NOT_REPEATED = ("chat.postMessage",)
"""Methods a client must not repeat by itself: an answer lost after Slack posted means a second post."""


class PooledRespond(AsyncRespond):
    """Bolt's `respond`, sent over the app's one kept-alive HTTP session rather than a connection of its own
    for every reply (Bolt's opens and closes a session per call)."""

    def __init__(self, *, response_url: str | None, session: aiohttp.ClientSession) -> None:
        super().__init__(response_url=response_url)
        self.session = session

    async def __call__(  # the same arguments as Bolt's, shaped into the message by Bolt's own function
        self,
        text: str | dict[str, Any] = "",
        blocks: Sequence[dict[str, Any] | Block] | None = None,
        attachments: Sequence[dict[str, Any] | Attachment] | None = None,
        response_type: str | None = None,
        replace_original: bool | None = None,
        delete_original: bool | None = None,
        unfurl_links: bool | None = None,
        unfurl_media: bool | None = None,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> WebhookResponse:
        if self.response_url is None:
            raise ValueError("respond is unsupported here as there is no response_url")
        if isinstance(text, dict):
            message = _build_message(**text)
        else:
            message = _build_message(
                text=text,
                blocks=blocks,
                attachments=attachments,
                response_type=response_type,
                replace_original=replace_original,
                delete_original=delete_original,
                unfurl_links=unfurl_links,
                unfurl_media=unfurl_media,
                thread_ts=thread_ts,
                metadata=metadata,
            )
        return await AsyncWebhookClient(url=self.response_url, session=self.session).send_dict(message)


def _repeatable(request: HttpRequest) -> bool:
    return not request.url.rstrip("/").endswith(tuple(f"/{method}" for method in NOT_REPEATED))


class _NotForPosts(AsyncRetryHandler):
    """Retries as the handler it is mixed into does, except a post: Slack may have posted before the
    connection broke or it failed to answer, and the dispatcher looks the post up before sending again."""

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return _repeatable(request) and await super()._can_retry_async(
            state=state, request=request, response=response, error=error
        )


class _ConnectionErrorsExceptPosts(_NotForPosts, AsyncConnectionErrorRetryHandler):
    """Retries a reset connection, except for a post."""


class _ServerErrorsExceptPosts(_NotForPosts, AsyncServerErrorRetryHandler):
    """Retries a 500 or 503, except for a post."""


def delivery_client(
    token: str | None, base_url: str, *, max_retries: int = 3, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    """The outbox's client: it never repeats a post by itself, because a post whose answer was lost may
    be in the channel already and only the dispatcher's look-up can tell. Look-ups, updates and joins are
    retried on 5xx and resets. A 429 is not waited out inside the client: the dispatcher holds back only
    the channel or method it applies to, and the rest of the outbox keeps going."""
    handlers: list[AsyncRetryHandler] = [
        _ConnectionErrorsExceptPosts(max_retry_count=max_retries),
        _ServerErrorsExceptPosts(max_retry_count=max_retries),
    ]
    return AsyncWebClient(token=token, base_url=base_url, timeout=15, retry_handlers=handlers, session=session)


@dataclass
class Directory:
    """Channel IDs for `#names` and members of user groups, cached for `ttl` seconds.

    User groups need a paid workspace: when `usergroups.users.list` fails the group stays unexpanded and
    callers mention it instead, so nobody is silently dropped.
    """

    client: AsyncWebClient
    ttl: float = 300.0
    _channels: dict[str, str] = field(default_factory=dict)
    _channels_at: float = 0.0
    _groups: dict[str, tuple[float, list[str] | None]] = field(default_factory=dict)
    _ims: dict[str, str] = field(default_factory=dict)

    async def im_channel(self, user: str) -> str:
        """The ID of the bot's direct-message channel with `user` (opened once, then remembered)."""
        if user not in self._ims:
            response = await self.client.conversations_open(users=user)
            self._ims[user] = str((response.get("channel") or {})["id"])
        return self._ims[user]

    async def channel_id(self, ref: str) -> str | None:
        """The ID of a channel given as an ID or `#name` (None when it cannot be found)."""
        if not ref.startswith("#"):
            return ref
        if time.monotonic() - self._channels_at > self.ttl or ref[1:] not in self._channels:
            await self._load_channels()
        return self._channels.get(ref[1:])

    async def _load_channels(self) -> None:
        names: dict[str, str] = {}
        cursor = None
        try:
            while True:
                response = await self.client.conversations_list(
                    types="public_channel,private_channel", exclude_archived=True, limit=1000, cursor=cursor
                )
                channels: list[dict[str, Any]] = response.get("channels", [])
                for channel in channels:
                    names[channel["name"]] = channel["id"]
                cursor = (response.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
        except SlackApiError as exc:
            log.warning("conversations.list failed: %s", api_error(exc))
            return
        self._channels = names
        self._channels_at = time.monotonic()

    async def group_members(self, group_id: str) -> list[str] | None:
        """Members of a user group, or None when Slack will not say (free plan, missing scope)."""
        cached = self._groups.get(group_id)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        try:
            response = await self.client.usergroups_users_list(usergroup=group_id)
            members: list[str] | None = list(response.get("users", []))
        except SlackApiError as exc:
            log.warning("usergroups.users.list %s failed: %s", group_id, api_error(exc))
            members = None
        self._groups[group_id] = (time.monotonic(), members)
        return members

    async def actor(self, plan: Plan, user_id: str) -> Actor:
        """The plan roles `user_id` holds, directly or through a listed user group."""
        roles = set(plan.role_of_person.get(user_id, frozenset()))
        for member, member_roles in plan.role_of_person.items():
            if member.startswith("S") and not member_roles <= roles:
                found = await self.group_members(member)
                if found and user_id in found:
                    roles |= member_roles
        return Actor(user_id, frozenset(roles))


TOKEN_REJECTED = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
"""Slack's answers to a token it will never accept: retrying cannot help, a person must fix the setting."""


CHECK_SECONDS = 5
"""How long the start-up auth.test may take: a Slack that hangs must not hold the start back."""


class TokenRejected(Exception):
    """Slack refused a token for good; the message names the variable it came from."""

    def __init__(self, variable: str, error: str) -> None:
        super().__init__(
            f"{variable} was refused by Slack ({error}): set it to a valid token of the installed app "
            "(api.slack.com/apps → your app; reinstall it if the token was revoked)"
        )
        self.error = error


class SlackUnreachable(Exception):
    """Slack could not be asked (5xx, rate limited, connection refused or reset, no answer in time)."""


@dataclass
class BotIdentity:
    """Who the bot is, as `auth.test` says; unknown (`known` False) until Slack has answered once."""

    team_id: str | None = None
    user_id: str | None = None
    bot_id: str | None = None
    enterprise_id: str | None = None
    known: bool = False


def refusal(exc: SlackApiError) -> str | None:
    """The error code when Slack refused the token itself, else None."""
    error = api_error(exc)
    return error if error in TOKEN_REJECTED else None


async def check_token(token: str, base_url: str, identity: BotIdentity) -> None:
    """One `auth.test`, without retries: fill in `identity`, or raise TokenRejected or SlackUnreachable."""
    client = AsyncWebClient(token=token, base_url=base_url, timeout=CHECK_SECONDS, retry_handlers=[])
    try:
        response = await client.auth_test()
    except SlackApiError as exc:
        if (error := refusal(exc)) is not None:
            raise TokenRejected("SLACK_BOT_TOKEN", error) from None
        raise SlackUnreachable(api_error(exc)) from None
    except (SlackClientError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise SlackUnreachable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from None
    identity.team_id = response.get("team_id")
    identity.user_id = response.get("user_id")
    identity.bot_id = response.get("bot_id")
    identity.enterprise_id = response.get("enterprise_id")
    identity.known = True
