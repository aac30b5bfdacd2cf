"""Adapters to systems other than Slack (HTTP clients); the rules they feed live in bot/core."""
