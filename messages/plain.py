"""Block Kit as plain text, for `warroom preview`, exports and logs."""

from __future__ import annotations

import re
from typing import Any

_DATE = re.compile(r"<!date\^\d+\^[^|>]*\|([^>]*)>")
_USER = re.compile(r"<@([UW][A-Z0-9]+)>")
_GROUP = re.compile(r"<!subteam\^(S[A-Z0-9]+)>")


def plain(text: str) -> str:
    """Show Slack tokens the way a reader would roughly see them."""
    text = _DATE.sub(r"\1", text)
    text = _USER.sub(r"@\1", text)
    text = _GROUP.sub(r"@\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def blocks_to_text(blocks: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            lines.append(block["text"]["text"].upper())
        elif kind == "section":
            if "text" in block:
                lines.append(plain(block["text"]["text"]))
            for f in block.get("fields", []):
                lines.append(plain(f["text"]).replace("\n", ": ", 1))
        elif kind == "context":
            lines.append("  " + " ".join(plain(e.get("text", "")) for e in block.get("elements", [])))
        elif kind == "divider":
            lines.append("-" * 40)
        elif kind == "actions":
            labels = [e.get("text", {}).get("text", "") for e in block.get("elements", [])]
            lines.append("[" + "] [".join(labels) + "]")
    return "\n".join(lines)
