"""Secrets never reach a log (SPEC §8): every log record is scrubbed of the tokens (Slack's and
WARROOM_PROMETHEUS_TOKEN, through `Settings.secrets`), the signing secret and the plans' PagerDuty routing
keys when it is created, before any handler (ours or a library's) sees it.

Libraries log what they send at DEBUG: aiosqlite logs every statement with its parameters, the plan's
source (and its routing key) among them. Scrubbing the record itself, rather than filtering one handler,
also covers handlers added later (a deployment's own, or a test's).
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

REDACTED = "(redacted)"
MIN_LENGTH = 6
"""Shorter values are not treated as secrets: scrubbing them would blank out ordinary words."""


class Redactor:
    """The secrets this process knows, and the log record factory that removes them."""

    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()
        self._lock = threading.Lock()
        self._installed = False

    def add(self, *secrets: str | None) -> None:
        """Treat each of `secrets` as a secret from now on (None and short values are ignored)."""
        new = {s for s in secrets if s and len(s.strip()) >= MIN_LENGTH}
        with self._lock:
            if not new <= set(self._secrets):
                # longest first, so a secret containing another is replaced whole
                self._secrets = tuple(sorted(new | set(self._secrets), key=len, reverse=True))

    def scrub(self, text: str) -> str:
        """`text` with every known secret replaced by (redacted)."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def install(self) -> None:
        """Scrub every log record of this process from now on (installing twice is harmless)."""
        with self._lock:
            if self._installed:
                return
            self._installed = True
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            self._scrub_record(record)
            return record

        logging.setLogRecordFactory(factory)

    def _scrub_record(self, record: logging.LogRecord) -> None:
        if not self._secrets:
            return
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: left for the handler to report, as logging always does
            return
        scrubbed = self.scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            scrubbed = self.scrub(text)
            if scrubbed != text:
                record.exc_text = scrubbed  # what formatters print instead of formatting exc_info again
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)


REDACTOR = Redactor()
"""The process's one redactor: `warroom run` adds the settings' secrets, loading a plan adds its routing key."""
