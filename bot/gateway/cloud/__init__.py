"""Meta's WhatsApp Cloud API: the gateway (`gateway`), Graph calls (`graph`), the webhook
(`webhook`, `events`) and its own HTTP server when the console does not serve it (`server`)."""
