"""Repositories: take and return domain values; flush, never commit."""
