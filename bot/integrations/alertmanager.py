"""`POST /hooks/alertmanager`: Prometheus Alertmanager's webhook (version 4) and Grafana alerting's (a superset).

Order of checks, each refusing before the next looks at anything: the hook exists only when
WARROOM_ALERTMANAGER_TOKEN is set (404 otherwise); `Authorization: Bearer TOKEN` must match it, compared
in constant time (401); the body is at most MAX_BODY bytes of JSON of the webhook's shape (400, with the
reason). Only then are the alerts handed to the releases whose alert window is open (`bot.core.alerts`);
one transaction per release. A delivery nobody takes is answered 200 (Alertmanager would otherwise retry
it) and logged in one line. A database that cannot save answers 503, so Alertmanager sends it again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import unicodedata
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from bot.core.alerts import AlertNotice, alert_window_open, receive_alerts, wanted
from bot.core.text import control_characters
from bot.domain import NotSaved
from bot.issues import MAX_ERROR, MAX_IMPACT
from bot.service import Service

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
"""1 MiB. Alertmanager's own default cap on a notification is far below this (it truncates a group at
`max_alerts`); a body larger than this is refused, not read."""
MAX_ALERTS = 1000
FINGERPRINT = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
PATH = "/hooks/alertmanager"

Handler = Callable[[web.Request], Awaitable[web.Response]]


class PayloadError(ValueError):
    """A body that is not a webhook delivery; the message says why."""


_MENTION = re.compile(r"<(?=[@#!])")
"""The start of a Slack mention or link token (`<@U…>`, `<#C…>`, `<!…>`)."""


def _clean(text: str, limit: int) -> str:
    """Text from outside as it can be stored and shown: no control or invisible format characters (such as
    the right-to-left override), no Slack mention — alert text comes from labels a scraped target can set, so
    `<@U…>` is shown with a look-alike angle (U+2039) and pings nobody — and at most `limit` characters."""
    if control_characters(text):
        text = "".join(c for c in text if c in "\n\t" or not control_characters(c))
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    text = _MENTION.sub("\u2039", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Alert(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime  # the webhook's field names, as it spells them
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""
    # Grafana alerting's additions
    values: dict[str, float | int | str | None] | None = None
    valueString: str = ""
    silenceURL: str = ""
    dashboardURL: str = ""
    panelURL: str = ""

    @field_validator("fingerprint")
    @classmethod
    def _fingerprint(cls, value: str) -> str:
        if value and not FINGERPRINT.match(value):
            raise ValueError("a fingerprint is 1-64 letters, digits, '_', '.', ':' or '-'")
        return value


class _Delivery(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    version: str | None = None
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupKey: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    truncatedAlerts: int = 0
    alerts: list[_Alert] = Field(max_length=MAX_ALERTS)
    # Grafana alerting's additions
    orgId: int | None = None
    title: str = ""
    state: str = ""
    message: str = ""

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: object) -> object:
        if value is not None and str(value) not in {"4", "1"}:
            raise ValueError(f"webhook version {value!r} is not supported: Alertmanager sends 4, Grafana 1")
        return None if value is None else str(value)


def _utc(value: datetime | None) -> datetime | None:
    """Aware UTC; Go's zero time (year 1: "no end yet") is None."""
    if value is None or value.year <= 1:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _number(value: float | int | str | None) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "null" if value is None else str(value)


def current_value(alert: _Alert) -> str:
    """Grafana's `valueString`, else its `values`, else a `value` annotation; "" when none is given."""
    if alert.valueString.strip():
        return alert.valueString.strip()
    if alert.values:
        return ", ".join(f"{name}={_number(v)}" for name, v in alert.values.items())
    for key in ("value", "current_value", "currentValue"):
        if alert.annotations.get(key, "").strip():
            return alert.annotations[key].strip()
    return ""


def _fingerprint_of(labels: dict[str, str]) -> str:
    """A fingerprint from the labels when the sender gave none (Alertmanager's is a hash of them too)."""
    canonical = json.dumps(sorted(labels.items()), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parse_delivery(raw: bytes) -> tuple[str, str, list[AlertNotice]]:
    """The body as (source, group key, alerts); PayloadError saying what is wrong otherwise."""
    if len(raw) > MAX_BODY:
        raise PayloadError(f"the body is larger than {MAX_BODY} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise PayloadError("the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise PayloadError(f"the body is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(data, dict):
        raise PayloadError("the body is not a JSON object: send Alertmanager's webhook payload (version 4)")
    try:
        delivery = _Delivery.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        message = first["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise PayloadError(f"{where}: {message}{more}") from None
    source = "grafana" if delivery.orgId is not None or delivery.version == "1" else "alertmanager"
    alerts = []
    for alert in delivery.alerts:
        labels = {_clean(k, 200): _clean(v, 1000) for k, v in alert.labels.items()}
        annotations = {_clean(k, 200): _clean(v, max(MAX_IMPACT, MAX_ERROR)) for k, v in alert.annotations.items()}
        starts_at = _utc(alert.startsAt)
        if starts_at is None:
            raise PayloadError(f"alert {labels.get('alertname', '?')!r} has no startsAt")
        alerts.append(
            AlertNotice(
                status=alert.status,
                fingerprint=alert.fingerprint or _fingerprint_of(labels),
                starts_at=starts_at,
                labels=labels,
                annotations=annotations,
                ends_at=_utc(alert.endsAt),
                generator_url=_clean(alert.generatorURL, 2000),
                value=_clean(current_value(alert), 500),
                source=source,
            )
        )
    return source, _clean(delivery.groupKey, 200), alerts


def _authorized(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


async def _read(request: web.Request) -> bytes:
    """The body, refused unread when Content-Length claims more than MAX_BODY, and refused once more than that
    arrived whatever it claimed (aiohttp stops reading at the application's `client_max_size`, 1 MiB)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise PayloadError(f"the body is larger than {MAX_BODY} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadError(f"the body is larger than {MAX_BODY} bytes") from None
    if len(raw) > MAX_BODY:
        raise PayloadError(f"the body is larger than {MAX_BODY} bytes")
    return raw


def alertmanager_hook(service: Service, token: SecretStr | None) -> Handler:
    """The handler of POST /hooks/alertmanager for `service`."""

    async def hook(request: web.Request) -> web.Response:
        if token is None:
            raise web.HTTPNotFound()
        if not _authorized(request.headers.get("Authorization"), token.get_secret_value()):
            log.warning("refused a request to %s from %s: missing or wrong bearer token", PATH, request.remote)
            return web.json_response(
                {"error": "missing or wrong bearer token"}, status=401, headers={"WWW-Authenticate": "Bearer"}
            )
        try:
            source, group, alerts = parse_delivery(await _read(request))
        except PayloadError as exc:
            log.warning("refused a delivery to %s from %s: %s", PATH, request.remote, exc)
            return web.json_response({"error": f"not an Alertmanager webhook payload: {exc}"}, status=400)
        try:
            taken = await deliver(service, alerts)
        except NotSaved as exc:
            log.error("could not save a delivery to %s: %s", PATH, exc.message)
            return web.json_response({"error": "the database could not save this; send it again"}, status=503)
        if not taken:
            why = _why_ignored(service, alerts)
            log.info("ignored %d alert(s) from %s (group %s): %s", len(alerts), source, group or "—", why)
            return web.json_response({"status": "ignored", "reason": why})
        recorded = "; ".join(f"{r}: {', '.join(kinds) or 'no change'}" for r, kinds in taken.items())
        log.info("took %d alert(s) from %s (group %s): %s", len(alerts), source, group or "—", recorded)
        return web.json_response({"status": "ok", "releases": taken})

    return hook


async def deliver(service: Service, alerts: list[AlertNotice]) -> dict[str, list[str]]:
    """Hand `alerts` to every release whose alert window is open and whose plan has a matching rule; return,
    per release that took any, the timeline events it recorded (e.g. `alert.firing issue:3`)."""
    taken: dict[str, list[str]] = {}
    if not alerts:
        return taken
    now = service.clock()
    for release_id in sorted(service.plans):
        plan = service.plans[release_id]
        if not wanted(plan, alerts):
            continue
        release = await service.get(release_id)
        if not alert_window_open(release, plan, now):
            continue
        outcome = await service.run(release_id, lambda r, p, at: receive_alerts(r, p, alerts, at))
        taken[release_id] = [f"{e.kind} {e.subject}" for e in outcome.events if e.kind.startswith("alert.")]
    return taken


def _why_ignored(service: Service, alerts: list[AlertNotice]) -> str:
    if not alerts:
        return "the delivery has no alerts"
    if not any(wanted(plan, alerts) for plan in service.plans.values()):
        return "no plan's alerts: rule matches them"
    return "no release that has a matching rule is in its window (in progress, or between its first phase and its end)"
