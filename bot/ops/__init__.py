"""Operating the daemon: its lifecycle under systemd, logs, status and diagnosis."""
