"""Alertmanager webhook payloads (version 4) and the plan rules the alert tests share.

The shape follows Alertmanager's notify/webhook `Message` (`version`, `groupKey`, `truncatedAlerts`, the
template `Data`: `receiver`, `status`, `alerts`, `groupLabels`, `commonLabels`, `commonAnnotations`,
`externalURL`); Grafana's example is the one in Grafana's webhook notifier documentation.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from tests.conftest import T0, plan_text

TOKEN = "test-alertmanager-token-0123456789"
TRIGGER = "Error rate > 1% for 5+ minutes"

ALERT_RULES = f"""
alerts:
  - match: {{alertname: HighErrorRate}}
    severity: critical
    component: api
    region_label: region
    rollback_trigger: "{TRIGGER}"
  - match: {{alertname: ApiLatency}}
    severity: high
    component: api
    rollback_trigger: "{TRIGGER}"
  - match: {{alertname: ~"Slow.*", team: web}}
    severity: high
    component: web
    resolve: auto
  - match: {{alertname: DiskFilling}}
    severity: medium
    component: database
"""


def alert_plan_text(start: datetime = T0, hours: int = 4) -> str:
    return plan_text(start, hours) + ALERT_RULES


def fingerprint(labels: dict[str, str]) -> str:
    return hashlib.sha1(repr(sorted(labels.items())).encode()).hexdigest()[:16]


def alert(
    name: str,
    *,
    status: str = "firing",
    starts: datetime = T0,
    ends: datetime | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One alert of a delivery, as Alertmanager writes it (Go's zero time for an end not known yet)."""
    all_labels = {"alertname": name, **(labels or {})}
    return {
        "status": status,
        "labels": all_labels,
        "annotations": annotations
        if annotations is not None
        else {"summary": f"{name}: 5xx above 1% on /appointments", "description": "upstream connect error"},
        "startsAt": starts.isoformat().replace("+00:00", "Z"),
        "endsAt": ends.isoformat().replace("+00:00", "Z") if ends else "0001-01-01T00:00:00Z",
        "generatorURL": f"http://prometheus:9090/graph?g0.expr=job%3A{name}",
        "fingerprint": fingerprint(all_labels),
        **extra,
    }


def delivery(*alerts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    name = "X"
    if isinstance(alerts[0]["labels"], dict):
        name = alerts[0]["labels"].get("alertname", "X")
    return {
        "receiver": "warroom",
        "status": status,
        "alerts": list(alerts),
        "groupLabels": {"alertname": name},
        "commonLabels": {"alertname": name},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "truncatedAlerts": 0,
        **extra,
    }


GRAFANA = {
    "receiver": "My Super Webhook",
    "status": "firing",
    "orgId": 1,
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "DiskFilling", "team": "blue", "zone": "us-1"},
            "annotations": {
                "description": "The system has high disk usage",
                "runbook_url": "https://myrunbook.com/runbook/1234",
                "summary": "This alert was triggered for zone us-1",
            },
            "startsAt": "2026-12-05T23:51:03.157076+02:00",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "https://play.grafana.org/alerting/1afz29v7z/edit",
            "fingerprint": "c6eadffa33fcdf37",
            "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana",
            "dashboardURL": "",
            "panelURL": "",
            "values": {"B": 44.23943737541908, "C": 1},
        }
    ],
    "groupLabels": {},
    "commonLabels": {"team": "blue"},
    "commonAnnotations": {},
    "externalURL": "https://play.grafana.org/",
    "version": "1",
    "groupKey": '{}:{alertname="DiskFilling"}',
    "truncatedAlerts": 0,
    "title": "[FIRING:1]  (DiskFilling blue)",
    "state": "alerting",
    "message": "**Firing**\n\nLabels:\n - alertname = DiskFilling",
}
