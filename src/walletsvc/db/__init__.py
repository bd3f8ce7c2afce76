"""Persistence: tables, repositories, engine and session handling."""
