"""Persistence: customers and journal (SQL), agent memory (SQL or MongoDB)."""
