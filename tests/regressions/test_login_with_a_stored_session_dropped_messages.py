"""`wabot login` with a session already stored connected with no message handler, while
whatsmeow acknowledged every message it received: those messages were gone for good."""

from __future__ import annotations

from bot.ops import daemon
from bot.ops.sdnotify import Notifier
from tests.fakes.pipeline import make_settings


async def test_login_with_a_stored_session_connects_nothing(
        tmp_path, openai_server, tenant, monkeypatch, capsys):
    settings = make_settings(f"sqlite:///{tmp_path}/db.sqlite3", tmp_path, openai_server, tenant)
    session = settings.state_dir / settings.whatsapp.session_file
    session.write_bytes(b"SQLite format 3\x00 stored login keys")
    built: list[object] = []
    monkeypatch.setattr(daemon, "neonize_gateway", lambda *a: built.append(a))

    code = await daemon.login(settings, Notifier(None))

    assert code == daemon.EXIT_OK
    assert built == []  # no Go client: nothing can be acknowledged and dropped
    assert "Already linked" in capsys.readouterr().out
