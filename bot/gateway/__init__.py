"""Transports: how wabot talks to WhatsApp (neonize) or to a test (memory)."""
