"""Pure rules: no Slack, storage, HTTP or clock; the caller passes `now`."""
