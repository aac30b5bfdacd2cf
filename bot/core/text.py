"""Text people type: cleaned when it arrives, escaped when it is shown. Pure.

Slack treats `&`, `<` and `>` as control characters: `<!channel>`, `<!here>`, `<!everyone>` and
`<!subteam^…>` notify people, `<@U…>` and `<#C…>` name a person or a channel, `<URL|label>` is a link.
`slack_escape` is the one function that turns typed text into mrkdwn: a well-formed person or channel
mention keeps working, a link shows where it goes, and everything else (broadcasts, user groups, dates,
anything that merely looks like a token) is shown literally, as typed.
"""

from __future__ import annotations

import re

from bot.domain import UsageError

_TOKEN = re.compile(r"<([^<>]*)>")
_PERSON = re.compile(r"@([UW][A-Z0-9]{2,})(?:\|[^<>]*)?")
_CHANNEL = re.compile(r"#([CG][A-Z0-9]{2,})(?:\|[^<>]*)?")
_LINK = re.compile(r"((?:https?|mailto):[^\s|<>]+)(?:\|([^<>]*))?")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))


def _entities(text: str) -> str:
    if "&" not in text and "<" not in text and ">" not in text:
        return text  # most text: names, ids, numbers
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _token(inner: str) -> str:
    if match := _PERSON.fullmatch(inner):
        return f"<@{match.group(1)}>"
    if match := _CHANNEL.fullmatch(inner):
        return f"<#{match.group(1)}>"
    if match := _LINK.fullmatch(inner):
        url, label = match.group(1), (match.group(2) or "").strip()
        if label and label not in {url, url.split(":", 1)[1].lstrip("/")}:
            # a label can say anything ("click to approve"): show it beside the real address
            return f"{_entities(label)} ({_entities(url)})"
        return _entities(url)
    return _entities(f"<{inner}>")


def slack_escape(value: object) -> str:
    """Typed text as Slack mrkdwn that shows what was typed: nothing in it can notify a channel or a user
    group or become a disguised link; `<@U…>` and `<#C…>` mentions stay mentions."""
    text = str(value)
    if "<" not in text:  # no token in it
        return _entities(text)
    out: list[str] = []
    position = 0
    for match in _TOKEN.finditer(text):
        out.append(_entities(text[position : match.start()]))
        out.append(_token(match.group(1)))
        position = match.end()
    out.append(_entities(text[position:]))
    return "".join(out)


def from_slack(text: str) -> str:
    """Slash-command text as the person wrote it: Slack's three entities decoded (a command with
    `should_escape` sends `&amp;`, `&lt;`, `&gt;`; mentions arrive as `<@U…|name>` tokens either way)."""
    for entity, char in _ENTITIES:
        text = text.replace(entity, char)
    return text


def control_characters(text: str) -> list[str]:
    """The control characters in `text` other than newline and tab, as `U+0000` names (empty: none)."""
    return sorted({f"U+{ord(c):04X}" for c in _CONTROL.findall(text.replace("\r\n", "\n"))})


def check_typed(text: str) -> str:
    """`text` with `\\r\\n` as `\\n`; a UsageError naming the control characters in it, if any (a NUL
    cannot be stored by PostgreSQL, and none of them can be shown in Slack)."""
    found = control_characters(text)
    if found:
        raise UsageError(
            f"Your text contains a control character ({', '.join(found[:5])}) that cannot be posted. "
            "Remove it (newlines and tabs are fine) and send it again; nothing was changed."
        )
    return text.replace("\r\n", "\n")


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, with a visible "…" when it was longer."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
