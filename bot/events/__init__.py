"""What happened, told to whoever listens: webhooks out (a durable outbox), owner alerts,
metrics and the console page."""
