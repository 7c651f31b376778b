"""`wabot` commands for the admin area (registered on the shared Typer app)."""

from __future__ import annotations

from bot.cli import app  # noqa: F401
