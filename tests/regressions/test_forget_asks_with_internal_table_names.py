"""Issue #24 (Low): `wabot forget` asked "…, their followups, their runs, their
undelivered_replies?" (the export's section keys) and printed an INFO log line among the
prompt and its answer. It now asks in the owner's words, and the command's own lines are
all the owner reads."""

from __future__ import annotations

from tests.cli.test_memory import restore_logging, seeded, wabot  # noqa: F401  (fixtures)


def test_forget_asks_in_plain_words_without_log_lines(seeded):  # noqa: F811
    result = wabot("forget", seeded.phone, input="y\n")
    assert result.exit_code == 0, result.output
    prompt = result.output.split("This cannot be undone")[0]
    for internal in ("followups", "runs", "undelivered_replies", "journal", "owner_alerts",
                     "webhook_events", "delivery_statuses"):
        assert internal not in prompt, internal
    assert "scheduled and sent follow-ups" in prompt and "replies still owed" in prompt
    assert "| INFO" not in result.output and "forgotten in every store" not in result.output
