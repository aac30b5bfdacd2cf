"""Pure rules: no Slack, storage, HTTP or clock; `now` is always an argument."""
