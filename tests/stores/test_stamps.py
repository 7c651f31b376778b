"""Change stamps: a command run in another process tells the daemon which customers it
changed (`bot.stores.stamps`)."""

from __future__ import annotations

from pathlib import Path

from bot.models import CustomerKey
from bot.stores.stamps import EVERYONE, ChangeStamps, mark_changed, stamp_path


def test_the_daemon_sees_what_a_command_stamped_once(tmp_path: Path):
    stamps = ChangeStamps(tmp_path, "shop")
    assert stamp_path(tmp_path, "shop").stat().st_mode & 0o777 == 0o600  # made, private
    assert stamps.poll() == []
    mark_changed(tmp_path, CustomerKey("shop", "+5215512345678"))
    mark_changed(tmp_path, CustomerKey("shop", "+14155550123"))
    assert stamps.poll() == ["+5215512345678", "+14155550123"]
    assert stamps.poll() == []


def test_stamps_from_before_the_start_are_not_news(tmp_path: Path):
    mark_changed(tmp_path, CustomerKey("shop", "+5215512345678"))
    assert ChangeStamps(tmp_path, "shop").poll() == []


def test_a_truncated_or_removed_file_means_anyone_may_have_changed(tmp_path: Path):
    stamps = ChangeStamps(tmp_path, "shop")
    mark_changed(tmp_path, CustomerKey("shop", "+5215512345678"))
    stamps.poll()
    stamp_path(tmp_path, "shop").unlink()
    assert stamps.poll() == [EVERYONE]
    assert stamps.poll() == []

