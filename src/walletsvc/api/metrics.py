"""Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("walletsvc_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "walletsvc_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
LEDGER_ENTRIES = Counter("walletsvc_ledger_entries_total", "Ledger rows written", ["type"])
REFUSALS = Counter("walletsvc_refusals_total", "Business refusals by problem code", ["code"])
