"""Warroom: run a planned production go-live from Slack."""
