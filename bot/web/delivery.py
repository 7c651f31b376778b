"""What happened to the messages sent to one customer, for the conversation in the console.

The Cloud API records each sent message's fate in the `outbound` table (Meta's status
callbacks: accepted → sent → delivered → read, or failed) and each message skipped before
sending (outside the 24-hour window with no template). A reply of the agent may go out as
several bubbles, each with its own status; the conversation shows one per line: the least
advanced of its bubbles, or "failed" when one failed. Skipped messages become notes.

Lines and statuses are matched by time: a bubble belongs to the latest line of ours
(agent or owner) written at or before the moment it was sent, since a turn stores its
reply at the turn's time and sends it after.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime
from typing import Any

from bot.stores.outbound import OutboundEntry

_RANK = {"accepted": 1, "sent": 2, "delivered": 3, "read": 4}
LABELS = {"accepted": "sent to WhatsApp", "sent": "sent", "delivered": "delivered",
          "read": "read", "failed": "not delivered"}
OURS = ("agent", "owner")


def _combined(statuses: list[tuple[str, str]]) -> tuple[str, str]:
    failed = [error for status, error in statuses if status == "failed"]
    if failed:
        return "failed", failed[0]
    return min((s for s, _ in statuses), key=lambda s: _RANK.get(s, 0)), ""


def annotate(lines: list[dict[str, Any]], entries: list[OutboundEntry]) -> list[dict[str, Any]]:
    """`lines` (message dicts, oldest first) with `delivery` set on our lines whose sends
    are known ({"status", "label", "error"}, else None) and a note per skipped message."""
    ours = [i for i, line in enumerate(lines) if line["role"] in OURS]
    times = [datetime.fromisoformat(lines[i]["at"]) for i in ours]
    found: dict[int, list[tuple[str, str]]] = {}
    notes: list[dict[str, Any]] = []
    for entry in sorted(entries, key=lambda e: (e.created_at, e.id or 0)):
        if entry.status == "skipped":
            notes.append({"seq": None, "role": "note", "kind": "skipped",
                          "at": entry.created_at.isoformat(),
                          "text": f"Not sent: {entry.error or 'skipped'}",
                          "reason": entry.error or "skipped", "msg_id": entry.wamid,
                          "run_id": None, "delivery": None})
            continue
        pos = bisect_right(times, entry.created_at) - 1
        if pos >= 0:
            found.setdefault(ours[pos], []).append((entry.status, entry.error))
    out = []
    for i, line in enumerate(lines):
        item = dict(line, delivery=None)
        if i in found:
            status, error = _combined(found[i])
            item["delivery"] = {"status": status, "label": LABELS.get(status, status),
                                "error": error}
        out.append(item)
    # Notes go where they happened; a stable sort keeps lines of one moment in order.
    return sorted(out + notes, key=lambda item: datetime.fromisoformat(item["at"]))
