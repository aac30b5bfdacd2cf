"""Block Kit assembly within Slack's limits, and validation with slack_sdk.models.blocks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.models.blocks import Block

from bot.core.text import slack_escape

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150
MAX_CONTEXT = 2000
MAX_FALLBACK = 3000
MAX_BUTTON_TEXT = 75
ELLIPSIS = "…"
VALUE = "\ue000"
"""Marks where a template value starts, so `layout` never reads a value as a layout line."""
VALUE_NEWLINE = "\ue001"
"""A line break inside a template value: a new line of text, never a new layout line."""


@dataclass(frozen=True)
class Message:
    """What chat.postMessage/chat.update/respond receive: a text fallback and Block Kit blocks."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)

    def kwargs(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


def truncate(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` characters, at a line or word break when one is near, never inside
    a Slack token such as `<@U123>` or `<!date^…>`."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    open_token = cut.rfind("<")
    if open_token > cut.rfind(">"):
        cut = cut[:open_token]
    for sep in ("\n", " "):
        at = cut.rfind(sep)
        if at > limit * 0.6:
            cut = cut[:at]
            break
    cut = re.sub(r"&[a-z]{0,3}$", "", cut)  # never leave half an entity such as "&am"
    return cut.rstrip() + ELLIPSIS


def _split(text: str, limit: int) -> list[str]:
    """Split long mrkdwn into chunks at line breaks, each within `limit`.

    Each chunk holds as many whole lines as fit and starts at a non-empty line; a line longer than `limit`
    is cut to fit (see `truncate`)."""
    if max(map(len, text.split("\n"))) <= limit:
        return _split_fitting(text, limit)
    chunks: list[str] = []
    lines: list[str] = []  # the chunk being filled, "\n".join(lines), kept as lines: no copy per line
    size = 0  # its length; a chunk starts at its first non-empty line
    for line in text.split("\n"):
        if len(line) > limit:
            line = truncate(line, limit)
        grown = size + 1 + len(line) if size else len(line)
        if grown > limit:
            chunks.append("\n".join(lines))
            lines, size = [line], len(line)
        elif size:
            lines.append(line)
            size = grown
        else:
            lines, size = [line], grown
    if size:
        chunks.append("\n".join(lines))
    return chunks


def _split_fitting(text: str, limit: int) -> list[str]:
    """`_split` of text whose lines all fit: each cut at the last line break within reach, no line copied."""
    chunks: list[str] = []
    start, end = 0, len(text)
    while True:
        while start < end and text[start] == "\n":  # a chunk starts at a non-empty line
            start += 1
        if start == end:
            return chunks
        if end - start <= limit:
            chunks.append(text[start:])
            return chunks
        cut = text.rfind("\n", start, start + limit + 1)  # found: the first line fits, and is not empty
        chunks.append(text[start:cut])
        start = cut + 1


def header(text: str) -> dict[str, Any]:
    """A header; it is plain text, so Slack tokens (dates, mentions) are shown as their fallback."""
    from messages.plain import plain

    return {
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(plain(text), MAX_HEADER), "emoji": True},
    }


def section(text: str, *, accessory: dict[str, Any] | None = None, block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": truncate(text, MAX_SECTION)},
    }
    if accessory:
        block["accessory"] = accessory
    if block_id:
        block["block_id"] = block_id
    return block


def fields_section(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """A section of up to 10 two-column fields."""
    return {
        "type": "section",
        "fields": [{"type": "mrkdwn", "text": truncate(f"*{k}*\n{v}", 2000)} for k, v in pairs[:10]],
    }


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(text, MAX_CONTEXT)}]}


def divider() -> dict[str, Any]:
    return {"type": "divider"}


def button(
    text: str, action_id: str, value: str, *, style: str | None = None, confirm: dict[str, Any] | None = None
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": truncate(text, MAX_BUTTON_TEXT), "emoji": True},
        "action_id": action_id,
        "value": value[:2000],
    }
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def actions(elements: list[dict[str, Any]], block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "actions", "elements": elements[:25]}
    if block_id:
        block["block_id"] = block_id
    return block


def value(text: str) -> str:
    """A value put into a template: marked, so that `layout` reads it as text and never as layout (a line
    of it starting with `#`, `---` or `~`, or a blank line in it, stays inside the block it is in)."""
    if "\n" not in text:  # nor "\r\n"
        return VALUE + text
    return VALUE + text.replace("\r\n", "\n").replace("\n", VALUE_NEWLINE)


def _unmark(text: str, newline: str = "\n") -> str:
    return text.replace(VALUE, "").replace(VALUE_NEWLINE, newline)


def _blank(line: str) -> bool:
    """Nothing but marks and white space: a paragraph break. `line` is stripped."""
    rest = line.lstrip(VALUE + VALUE_NEWLINE)
    if rest and not rest[0].isspace():
        return False  # the usual line: a character that is neither (found without unmarking the line)
    return not _unmark(line).strip()


def sections(text: str) -> list[dict[str, Any]]:
    """Sections for mrkdwn longer than one allows, split at line breaks; no layout rules apply."""
    return [section(chunk) for chunk in _split(text, MAX_SECTION) if chunk.strip()]


def layout(markup: str) -> list[dict[str, Any]]:
    """Turn a rendered template into blocks.

    `# Title` is a header, `---` a divider, `~ text` a context line; other paragraphs (separated by a blank
    line) are sections, split at line breaks when longer than Slack allows. Only the template's own lines
    are layout: values (marked by `value`) are text wherever they are.
    """
    blocks: list[dict[str, Any]] = []
    paragraph: list[str] = []

    def flush() -> None:
        if not paragraph:
            return
        text = _unmark("\n".join(paragraph)).strip("\n")
        paragraph.clear()
        if text.strip():
            blocks.extend(sections(text))

    for line in markup.split("\n"):
        stripped = line.strip()
        if stripped.startswith("# "):
            flush()
            blocks.append(header(_unmark(stripped[2:], " ").strip()))
        elif stripped == "---":
            flush()
            blocks.append(divider())
        elif stripped.startswith("~ "):
            flush()
            blocks.append(context(_unmark(stripped[2:]).strip()))
        elif not stripped or _blank(stripped):
            flush()
        else:
            paragraph.append(line.rstrip())
    flush()
    return blocks


def fallback_text(blocks: list[dict[str, Any]]) -> str:
    """The notification text: header and the first sections, plain enough for a phone's lock screen."""
    parts: list[str] = []
    for block in blocks:
        if block["type"] == "header":
            parts.append(slack_escape(block["text"]["text"]))  # plain text there; mrkdwn here
        elif block["type"] == "section" and "text" in block:
            parts.append(block["text"]["text"])
        if sum(len(p) for p in parts) > MAX_FALLBACK:
            break
    return truncate("\n".join(parts), MAX_FALLBACK) or " "


def fit(blocks: list[dict[str, Any]], *, keep_last: int = 0) -> list[dict[str, Any]]:
    """At most 50 blocks: drop from the middle, keeping the last `keep_last` (buttons), and say so."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    tail = blocks[len(blocks) - keep_last :] if keep_last else []
    head = blocks[: MAX_BLOCKS - 1 - len(tail)]
    dropped = len(blocks) - len(head) - len(tail)
    return [*head, context(f"{ELLIPSIS} {dropped} more block(s) not shown"), *tail]


def message(blocks: list[dict[str, Any]], text: str | None = None, *, keep_last: int = 0) -> Message:
    """A Message within Slack's limits; `text` defaults to a fallback derived from the blocks."""
    fitted = fit(blocks, keep_last=keep_last)
    return Message(text=truncate(text, MAX_FALLBACK) if text else fallback_text(fitted), blocks=fitted)


def submitted_values(view: dict[str, Any]) -> dict[str, str | None]:
    """A submitted modal's values by block id: the text typed or the option chosen, whatever the
    element's action_id (each input block here holds one element). A block, element or value of another
    shape than Slack's (a signed body can hold anything) counts as left empty."""
    out: dict[str, str | None] = {}
    state = view.get("state")
    values = state.get("values") if isinstance(state, dict) else None
    for block_id, elements in (values if isinstance(values, dict) else {}).items():
        element = next(iter(elements.values()), None) if isinstance(elements, dict) else None
        if not isinstance(element, dict):
            out[block_id] = None
            continue
        selected = element.get("selected_option")
        value = selected.get("value") if isinstance(selected, dict) else element.get("value")
        out[block_id] = value if isinstance(value, str) else None
    return out


def validate(blocks: list[dict[str, Any]]) -> None:
    """Raise if Slack would reject these blocks (slack_sdk's own model checks plus the block count)."""
    if len(blocks) > MAX_BLOCKS:
        raise ValueError(f"{len(blocks)} blocks: Slack accepts at most {MAX_BLOCKS}")
    for raw in blocks:
        block = Block.parse(raw)
        if block is None:
            raise ValueError(f"not a block: {raw!r}")
        block.validate_json()
