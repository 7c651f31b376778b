"""What the WhatsApp Web transport takes besides its settings section (`WhatsAppSettings`).

Tests swap the Go client's maker, the console the QR code is printed on and the jitter's
randomness; the timeouts here are whatsmeow's, not the operator's, so no setting holds them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TextIO

from bot.gateway.web.goclient import ClientFactory, new_neonize_client

# whatsmeow request.go defaultRequestTimeout (75 s) for the send's answer, and send.go
# SendMessage's one retryFrame after a disconnect (request.go: WaitForConnection(5 s), then
# the frame again): a Python timeout shorter than that calls "failed" what may be delivered.
SEND_TIMEOUT = 2 * 75.0 + 5.0 + 5.0


@dataclass(frozen=True, slots=True)
class Tuning:
    client_factory: ClientFactory = new_neonize_client
    console: TextIO | None = None  # where QR and pair codes are printed; None: stdout
    rng: random.Random | None = None  # the backoff's jitter; None: a fresh Random
    probe_timeout: float = 10.0
    backoff_jitter: float = 0.1
    login_timeout: float = 75.0  # the watchdog after the last QR code
    send_timeout: float = SEND_TIMEOUT
    connect_wait: float = 30.0  # how long a send waits for the connection
    send_attempts: int = 3
    download_timeout: float = 120.0
