"""The QR code and the pair code as the owner is shown them: the terminal, a PNG, a text.

The QR code is a one-minute login credential, so its PNG is written owner-only. QR codes go
to the terminal as plain lines of Unicode half blocks (no cursor movement), which journald
records as they are.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import segno

QR_PNG_NAME = "login-qr.png"


def qr_terminal_text(data: bytes) -> str:
    """The QR code as lines of half-block characters, ready to print."""
    out = io.StringIO()
    segno.make_qr(data).terminal(out=out, compact=True)
    return out.getvalue()


def write_qr_png(data: bytes, path: Path) -> None:
    """Write the QR code as a PNG, atomically and owner-only: it logs in whoever scans it."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        segno.make_qr(data).save(f, kind="png", scale=8)
    tmp.replace(path)


def format_pair_code(code: str) -> str:
    """`ABCDEFGH` or `abcd-efgh` → `ABCD-EFGH`, the way WhatsApp shows the entry boxes."""
    plain = re.sub(r"[^0-9A-Za-z]", "", code).upper()
    if len(plain) != 8:
        return plain
    return f"{plain[:4]}-{plain[4:]}"


def pair_code_instructions(code: str, masked_phone: str) -> str:
    """What the owner has to do with a pair code, as lines for the terminal and journald."""
    shown = format_pair_code(code)
    return (
        f"WhatsApp pair code for {masked_phone}: {shown}\n"
        "On that phone: WhatsApp → Settings → Linked devices → Link a device →"
        f" Link with phone number instead → enter {shown}\n"
        "The code expires in about two and a half minutes.\n"
    )


def remove_file(path: Path) -> None:
    path.unlink(missing_ok=True)
