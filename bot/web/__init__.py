"""The owner's console: the web page and the HTTP API served by the daemon."""
