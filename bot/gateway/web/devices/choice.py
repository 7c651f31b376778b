"""Which device store a number uses (`whatsapp.session_store`)."""

from __future__ import annotations

from pathlib import Path

from bot.gateway.web.devices.base import DeviceStore
from bot.gateway.web.devices.database import DatabaseStore
from bot.gateway.web.devices.file import FileStore
from bot.settings import Settings, session_store_problem


def device_store_for(settings: Settings) -> DeviceStore:
    """The number's store, as `whatsapp.session_store` says.

    auto: the database when it is PostgreSQL, else the file. A session file that already
    holds a login is kept (`file.FileStore.kept`): moving it would mean linking the phone
    again, which only its owner can do, so it stays where it works and the log says once
    how to move it.
    """
    if problem := session_store_problem(settings):
        raise ValueError(problem)
    wa = settings.whatsapp
    path = Path(settings.state_dir) / wa.session_file
    on_postgres = settings.sql_url.startswith("postgres")
    if wa.session_store == "file" or not on_postgres:
        return FileStore(path)
    if wa.session_store == "auto" and FileStore(path).holds_login():
        return FileStore(path, kept=True)
    return DatabaseStore(settings.sql_url, settings.tenant)
