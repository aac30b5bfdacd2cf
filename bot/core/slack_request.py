"""The shape a verified Slack request body must have before Bolt and the handlers read it.

Bolt and the handlers index into a body the way Slack builds it (`body["user"]["id"]`, the first action,
the view's `callback_id`). A signed body of another shape is refused here with a reason, not met by a
traceback further in.
"""

from __future__ import annotations

from collections.abc import Mapping

IDENTITIES = ("user", "team", "enterprise", "channel")
"""An id as a string, an object with an `id`, or null."""
TOP_LEVEL_OBJECTS = ("user", "channel")
"""At the top of a request Slack gives these as objects (a command names them `user_id`, `channel_id`)."""
STRINGS = (  # at the top level
    "type",
    "command",
    "text",
    "user_id",
    "channel_id",
    "channel_name",
    "team_id",
    "enterprise_id",
    "trigger_id",
    "response_url",
    "callback_id",
    "action_id",
    "block_id",
    "value",
    "private_metadata",
    "api_app_id",
    "challenge",
    "id",
)
OBJECTS = ("view", "event", "container", "state", "message", "previous_message", "item", "assistant_thread")
LISTS_OF_OBJECTS = ("actions", "authorizations", "response_urls")
ACTION_STRINGS = ("action_id", "block_id", "value")
"""In each of a click's `actions` (Bolt matches listeners on `action_id`; the listeners read `value`)."""
MAX_DEPTH = 4

REQUIRED: dict[str, tuple[str, ...]] = {
    "command": ("command", "text", "user_id", "channel_id"),
    "block_actions": ("user.id", "actions"),
    "view_submission": ("user.id", "view.callback_id", "view.type"),
    "view_closed": ("user.id", "view.callback_id", "view.type"),
    "event_callback": ("event.type",),
    "url_verification": ("challenge",),
}
"""What each kind of request carries that the code relies on (a dotted path to a string or a non-empty list)."""
EVENTS_REQUIRED: dict[str, tuple[str, ...]] = {"app_home_opened": ("event.user",)}
"""The same for the events listened to, by event type."""


def _problem_in(value: Mapping[str, object], where: str, depth: int) -> str | None:
    for key in TOP_LEVEL_OBJECTS if depth == 0 else ():
        if value.get(key) is not None and not isinstance(value[key], Mapping):
            return f"{key} is not an object"
    for key in IDENTITIES:
        item = value.get(key)
        if isinstance(item, Mapping):
            if (problem := _problem_in(item, f"{where}{key}.", depth + 1)) is not None:
                return problem
        elif item is not None and not isinstance(item, str):
            return f"{where}{key} is neither an id nor an object"
    for key in STRINGS if depth == 0 else ():  # nested objects (an action's `text`, a view's `title`) hold more
        if key in value and value[key] is not None and not isinstance(value[key], str):
            return f"{where}{key} is not a string"
    for key in OBJECTS:
        if key in value:
            item = value[key]
            if not isinstance(item, Mapping):
                return f"{where}{key} is not an object"
            if depth < MAX_DEPTH and (problem := _problem_in(item, f"{where}{key}.", depth + 1)) is not None:
                return problem
    for key in LISTS_OF_OBJECTS:
        if key in value:
            items = value[key]
            if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
                return f"{where}{key} is not a list of objects"
            for n, item in enumerate(items):
                if depth < MAX_DEPTH and (problem := _problem_in(item, f"{where}{key}[{n}].", depth + 1)) is not None:
                    return problem
    return None


def _present(body: Mapping[str, object], path: str) -> bool:
    value: object = body
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False
        value = value[part]
    return isinstance(value, str) or (isinstance(value, list) and bool(value))


def body_problem(body: object) -> str | None:
    """What is wrong with the shape of a parsed request body, or None when Slack could have sent it."""
    if not isinstance(body, Mapping):
        return "the body is not an object"
    if (problem := _problem_in(body, "", 0)) is not None:
        return problem
    kind = "command" if "command" in body else str(body.get("type") or "")
    required = REQUIRED.get(kind, ())
    if kind == "event_callback" and isinstance(event := body.get("event"), Mapping):
        required += EVENTS_REQUIRED.get(str(event.get("type")), ())
    missing = [path for path in required if not _present(body, path)]
    if missing:
        return f"a {kind} request without {', '.join(missing)}"
    if kind == "block_actions":
        for n, action in enumerate(body["actions"]):
            for key in ACTION_STRINGS:
                if (key in action or key == "action_id") and not isinstance(action.get(key), str):
                    return f"actions[{n}].{key} is not a string"
    view = body.get("view")
    step = kind == "workflow_step_edit" or (
        kind == "view_submission" and isinstance(view, Mapping) and view.get("type") == "workflow_step"
    )
    if step and not isinstance(body.get("workflow_step"), Mapping):
        return f"a {kind} request for a workflow step without workflow_step"  # Bolt reads it before any listener
    return None
