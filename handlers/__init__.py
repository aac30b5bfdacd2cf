"""Slack listeners. Each module has `register(app)`; `register_all` is what the app builder calls."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from handlers import checklists, gonogo, home, issue, page, phase, release, rollback, signoffs
from handlers.errors import GuardedApp


def register_all(app: AsyncApp) -> None:
    """Attach every listener to `app`: the one map from Slack commands and actions to handlers.

    Modules receive a GuardedApp, so every listener goes through the one error handler.
    """
    guarded_app = GuardedApp(app)
    for module in (release, phase, home, issue, page, gonogo, rollback, checklists, signoffs):
        module.register(guarded_app)
