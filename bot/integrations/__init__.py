"""Adapters to systems other than Slack that drive the release (Alertmanager, Grafana)."""
