"""The one error handler: known domain errors become private replies; anything else is logged with an id.

Listeners are wrapped here rather than relying on `app.error` alone: when a listener raises right after
`ack()`, Bolt's asyncio runner replaces the already-recorded ack with None and answers Slack with a 404
("unhandled request"). Catching inside the listener keeps the ack and still gives one place for errors.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.core.text import slack_escape
from bot.domain import DomainError, NotSaved
from bot.metrics import METRICS
from bot.service import AlreadyHandled
from bot.slack import api_error

log = logging.getLogger(__name__)

Listener = Callable[..., Awaitable[Any]]
_EXTRA = ("respond", "body", "client", "context", "ack")

EXPIRED_TRIGGER = {"expired_trigger_id", "exchanged_trigger_id"}
"""views.open refusals for a trigger_id used too late or twice: a recovered request that opens a form."""

FINISH_REQUEST = "finish_request"
"""Context key of the callback that marks the request finished in the inbox once its listener is done."""
TAKE_TURN = "take_turn"
"""Context key of the wait for the request's turn to work, taken once Slack has its acknowledgement."""
LISTENER_STARTED = "listener_started"
"""Context key of the callback a listener calls as it starts: the request found one (see `Inbox._dispatch`)."""


def request_name(body: dict[str, Any]) -> str:
    """A short name for a request, for metrics and logs: the command, action_id or callback_id."""
    if body.get("command"):
        return str(body["command"])
    if body.get("type") == "block_actions":
        return str((body.get("actions") or [{}])[0].get("action_id", "block_actions"))
    if body.get("type") in {"view_submission", "view_closed"}:
        return str((body.get("view") or {}).get("callback_id", body["type"]))
    return str(body.get("type") or (body.get("event") or {}).get("type") or "unknown")


async def reply_privately(client: Any, *, user: str, channel: str, text: str, blocks: Any = None) -> None:
    """An ephemeral message in `channel`, or a DM when there is no channel or the bot cannot post there."""
    if not user:
        raise ValueError("nobody to reply to")
    if channel and not channel.startswith("D"):
        try:
            await client.chat_postEphemeral(channel=channel, user=user, text=text, blocks=blocks)
            return
        except SlackApiError as exc:  # not in that channel, or it is archived: a DM still reaches them
            log.info("ephemeral reply to %s in %s failed (%s); sending a DM", user, channel, exc.response.get("error"))
    await client.chat_postMessage(channel=user, text=text, blocks=blocks)


def from_home(body: dict[str, Any]) -> bool:
    """True for a click in the App Home: it carries the Home view, and no channel, message or response_url."""
    container = body.get("container") or {}
    return container.get("type") == "view" and (body.get("view") or {}).get("type") == "home"


Notice = Callable[[str, str], None]
"""Shows a line at the top of a person's App Home (bot.home.HomeBoard.notice)."""


async def answer(body: dict[str, Any], respond: Any, client: Any, text: str, notice: Notice | None = None) -> None:
    """A button's answer to whoever clicked it: ephemeral where the message is; on top of their App Home when
    they clicked there (`notice`); else by DM. `text` is a rule's reply: it is escaped on every road."""
    if respond is not None and getattr(respond, "response_url", None):
        await respond(response_type="ephemeral", replace_original=False, text=text)
        return
    user = str((body.get("user") or {}).get("id") or "")
    if notice is not None and from_home(body):
        notice(user, text)
        return
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or ""
    await reply_privately(client, user=user, channel=str(channel), text=slack_escape(text))


async def reply_error(
    error: Exception, body: dict[str, Any], respond: Any, client: Any, notice: Notice | None = None
) -> None:
    """Tell the person what went wrong, privately (in their App Home when they clicked there); log unexpected
    errors with an id they can quote."""
    name = request_name(body)
    if isinstance(error, NotSaved):  # said once where it happened (storage); the person is told plainly
        METRICS.command(name, "error")
        text = str(error)
    elif isinstance(error, DomainError):
        METRICS.command(name, "refused")
        text = str(error)
    elif isinstance(error, SlackApiError) and api_error(error) in EXPIRED_TRIGGER:
        METRICS.command(name, "refused")
        log.info("%s: the form could not be opened (%s)", name, api_error(error))
        text = (
            "The form could not be opened: Slack allows 3 seconds for that, and they had passed (Warroom may have "
            "been restarting). Run the command or click the button again."
        )
    else:
        METRICS.command(name, "error")
        error_id = uuid.uuid4().hex[:8]
        log.error("unexpected error %s handling %s", error_id, name, exc_info=error)
        text = f"Something went wrong on our side (error id `{error_id}`). Try again, or tell the release manager."
    try:
        if notice is not None and from_home(body) and (body.get("user") or {}).get("id"):
            notice(str(body["user"]["id"]), text)  # escaped where the Home is built
            return
        text = slack_escape(text)  # refusals quote what was typed
        # Bolt always passes a `respond`, but it only works when the request carried a response_url
        # (commands, message buttons); modals and App Home have none and are answered privately instead.
        if respond is not None and getattr(respond, "response_url", None):
            respond = getattr(respond, "unescaped", respond)
            await respond(text=text, response_type="ephemeral", replace_original=False)
            return
        user = (body.get("user") or {}).get("id") or body.get("user_id") or (body.get("event") or {}).get("user")
        channel = (body.get("channel") or {}).get("id") or body.get("channel_id") or ""
        if client is not None and user:
            await reply_privately(client, user=str(user), channel=str(channel), text=text)
    except Exception:
        log.warning("could not deliver the error reply for %s", name, exc_info=True)


async def _answer_form(error: Exception, body: dict[str, Any], ack: Any) -> None:
    """A form whose listener failed before acknowledging it still gets its answer in time, in the form."""
    if body.get("type") != "view_submission" or ack is None or getattr(ack, "response", None) is not None:
        return
    block = next(
        (
            str(b["block_id"])
            for b in (body.get("view") or {}).get("blocks") or []
            if isinstance(b, dict) and b.get("type") == "input" and b.get("block_id")
        ),
        None,
    )
    if isinstance(error, DomainError):
        text = str(error)
    else:
        text = "Something went wrong on our side; nothing was recorded (you have a message with the error id)."
    if block is None:
        await ack()  # nowhere in the form to say it: the form closes and the message explains
    else:
        await ack(response_action="errors", errors={block: text[:300]})


class AckThenTakeTurn:
    """`ack` for listeners: once Slack has its answer, the listener goes on only when it is its turn, so a
    burst of acknowledged requests is worked off a few at a time instead of all at once."""

    def __init__(self, ack: Any, take_turn: Callable[[], Awaitable[None]]) -> None:
        self.ack = ack
        self.take_turn = take_turn

    @property
    def response(self) -> Any:
        return self.ack.response

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        answered = await self.ack(*args, **kwargs)
        await self.take_turn()
        return answered


class EscapingRespond:
    """`respond` for listeners: a reply of text alone (a rule's answer, which may quote what was typed)
    goes through `slack_escape`, like every other text the bot shows; a message with blocks was built
    escaped already."""

    def __init__(self, respond: Any) -> None:
        self.unescaped = respond

    @property
    def response_url(self) -> str | None:
        """The request's response_url (None for forms and App Home), as Bolt's `respond` has it."""
        return getattr(self.unescaped, "response_url", None)

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("blocks"):
            if args:
                args = (slack_escape(args[0]), *args[1:])
            elif isinstance(kwargs.get("text"), str):
                kwargs["text"] = slack_escape(kwargs["text"])
        return await self.unescaped(*args, **kwargs)


def guarded(listener: Listener) -> Listener:
    """Wrap a listener so errors raised after its ack become replies (see the module docstring)."""
    own = inspect.getfullargspec(inspect.unwrap(listener)).args
    names = own + [n for n in _EXTRA if n not in own]

    async def wrapper(**kwargs: Any) -> Any:
        if kwargs.get("respond") is not None:
            kwargs = {**kwargs, "respond": EscapingRespond(kwargs["respond"])}
        given = {n: kwargs[n] for n in own}
        if (started := (kwargs.get("context") or {}).get(LISTENER_STARTED)) is not None:
            started()
        take_turn = (kwargs.get("context") or {}).get(TAKE_TURN)
        if take_turn is not None and given.get("ack") is not None:
            given["ack"] = AckThenTakeTurn(given["ack"], take_turn)
        completed = True
        try:
            return await listener(**given)
        except asyncio.CancelledError:  # stopped before it was done: not finished, so the next start does it
            completed = False
            raise
        except AlreadyHandled:
            # processed meanwhile by a replica or by recovery, which replied: nothing more to say
            log.info("%s was already handled elsewhere; not applied again", request_name(kwargs.get("body") or {}))
            return None
        except Exception as error:
            body = kwargs.get("body") or {}
            await _answer_form(error, body, kwargs.get("ack"))
            deps = (kwargs.get("context") or {}).get("deps")
            notice = deps.home.notice if deps is not None and deps.home is not None else None
            await reply_error(error, body, kwargs.get("respond"), kwargs.get("client"), notice)
            return None
        finally:
            finish = (kwargs.get("context") or {}).get(FINISH_REQUEST)
            if finish is not None:
                await finish(completed)

    wrapper.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names]
    )
    wrapper.__name__ = getattr(listener, "__name__", "listener")
    wrapper.__qualname__ = getattr(listener, "__qualname__", wrapper.__name__)
    return wrapper


class GuardedApp:
    """What `register(app)` receives: the Bolt app's decorators, with every listener `guarded`."""

    def __init__(self, app: Any) -> None:
        self._app = app

    def _wrap(self, method: str, *args: Any, **kwargs: Any) -> Callable[[Listener], Listener]:
        decorator = getattr(self._app, method)(*args, **kwargs)

        def register(listener: Listener) -> Listener:
            decorator(guarded(listener))
            return listener

        return register

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Listener], Listener]:
        return self._wrap("command", *args, **kwargs)

    def action(self, *args: Any, **kwargs: Any) -> Callable[[Listener], Listener]:
        return self._wrap("action", *args, **kwargs)

    def view(self, *args: Any, **kwargs: Any) -> Callable[[Listener], Listener]:
        return self._wrap("view", *args, **kwargs)

    def event(self, *args: Any, **kwargs: Any) -> Callable[[Listener], Listener]:
        return self._wrap("event", *args, **kwargs)

    def options(self, *args: Any, **kwargs: Any) -> Callable[[Listener], Listener]:
        return self._wrap("options", *args, **kwargs)

    def shortcut(self, *args: Any, **kwargs: Any) -> Callable[[Listener], Listener]:
        return self._wrap("shortcut", *args, **kwargs)
