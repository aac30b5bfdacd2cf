"""Pure rules: no Slack, storage, HTTP or clock imports; everything they need arrives as arguments."""
