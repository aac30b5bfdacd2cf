"""Pure rules: no Slack, storage, HTTP or clock imports; everything they need, `now` included, arrives as arguments."""
