"""Pure rules: no Slack, storage, HTTP or clock."""
