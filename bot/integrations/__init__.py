"""Adapters to systems other than Slack (Alertmanager and Grafana in, Prometheus out); the rules they feed live
in bot/core."""
