"""Agents: one per customer, their registry, prompt and tools."""
