"""manifest.yml against Slack's official schema and against the identifiers the code uses."""

from __future__ import annotations

import json

import yaml

from bot.ids import Command, Event
from tests.conftest import ROOT, shared_path


def manifest() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "manifest.yml").read_text())


def test_manifest_validates_against_slacks_schema() -> None:
    import jsonschema

    schema = json.loads(shared_path("slack", "manifest-schema.v1.json").read_text())
    jsonschema.validate(manifest(), schema)


def test_manifest_declares_exactly_the_commands_the_code_handles() -> None:
    commands = {c["command"] for c in manifest()["features"]["slash_commands"]}
    assert commands == {c.value for c in Command}
    for command in manifest()["features"]["slash_commands"]:
        assert command["usage_hint"] and command["description"]


def test_manifest_enables_what_the_app_uses() -> None:
    m = manifest()
    assert m["settings"]["interactivity"]["is_enabled"] is True
    assert m["settings"]["socket_mode_enabled"] is True
    assert m["features"]["app_home"]["home_tab_enabled"] is True
    assert set(m["settings"]["event_subscriptions"]["bot_events"]) == {e.value for e in Event}
    scopes = set(m["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "usergroups:read", "channels:history", "channels:read", "im:history"} <= scopes
    assert "files:write" in scopes, "/release report uploads files (files.getUploadURLExternal needs files:write)"
