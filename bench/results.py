"""Where a bench run's figures go: JSON in bench/results/ (dated, and latest.json for the charges bench),
and the charges chart (PNG) drawn with matplotlib (a dev dependency, locked)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import describe

RESULTS = Path(__file__).resolve().parent / "results"


def save(name: str, figures: dict[str, Any], *, latest: bool = False) -> Path:
    """bench/results/<name>-<UTC date and time>.json (and latest.json with `latest`); answers the path."""
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC)
    document = {"bench": name, "taken_at": stamp.isoformat(timespec="seconds"), **figures}
    text = json.dumps(document, indent=2, sort_keys=False) + "\n"
    path = RESULTS / f"{name}-{stamp.strftime('%Y-%m-%dT%H%M%SZ')}.json"
    path.write_text(text)
    if latest:
        (RESULTS / "latest.json").write_text(text)
    return path


def chart_charges(figures: dict[str, Any], path: Path | None = None) -> Path | None:
    """Throughput against clients and latency percentiles against clients (hot wallet and the trivial
    endpoint), the open-loop and multi-process figures beside them, the machine in the title. None when
    matplotlib is not installed (the JSON has every figure anyway)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    path = path or RESULTS / "charges.png"
    curve = figures["curve"]
    clients = [p["clients"] for p in curve["hot"]]
    fig, axes = plt.subplots(2, 2, figsize=(14, 10))
    (rate_ax, latency_ax), (bars_ax, processes_ax) = axes

    for name, label, style in (
        ("trivial", "GET /healthz (trivial)", "o--"),
        ("hot", "POST /v1/usage, one hot wallet", "o-"),
    ):
        rate_ax.plot(clients, [p["rate"] for p in curve[name]], style, label=label)
    raw = figures["raw_sql"]
    clients_of_raw = figures["settings"]["clients"]
    rate_ax.axhline(
        raw["hot"]["rate"],
        color="grey",
        linestyle=":",
        label=f"raw SQL, hot wallet ({clients_of_raw} clients)",
    )
    rate_ax.set(xscale="log", xlabel="concurrent clients", ylabel="requests / s", title="Throughput")
    rate_ax.minorticks_off()
    rate_ax.set_xticks(clients, [str(c) for c in clients])
    rate_ax.set_ylim(bottom=0)
    rate_ax.legend(fontsize=8)

    for name, label, colour in (("hot", "hot wallet", "tab:orange"), ("trivial", "trivial", "tab:blue")):
        latency_ax.plot(clients, [p["p50_ms"] for p in curve[name]], "o-", color=colour, label=f"{label} p50")
        latency_ax.plot(
            clients, [p["p99_ms"] for p in curve[name]], "s--", color=colour, label=f"{label} p99"
        )
    latency_ax.set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="ms", title="Latency")
    latency_ax.minorticks_off()
    latency_ax.set_xticks(clients, [str(c) for c in clients])
    latency_ax.legend(fontsize=8)

    labels, values = [], []
    for key, label in (("hot", "open loop\nhot"), ("spread", "open loop\nmany wallets")):
        run = figures["open_loop"][key]
        labels += [f"{label}\np50", f"{label}\np99"]
        values += [run["p50_ms"], run["p99_ms"]]
    # p50 in blue; p99 green where it meets the goal, red where it does not.
    colours = [
        "tab:blue" if i % 2 == 0 else ("tab:green" if v <= 25 else "tab:red") for i, v in enumerate(values)
    ]
    bars = bars_ax.bar(labels, values, color=colours)
    bars_ax.bar_label(bars, fmt="%.1f ms", fontsize=8)
    bars_ax.axhline(25, color="grey", linestyle=":", label="goal: p99 <= 25 ms")
    bars_ax.set(ylabel="ms (from the scheduled send time)", title="Open loop at 70 % of the peak rate")
    bars_ax.tick_params(axis="x", labelsize=7)
    bars_ax.legend(fontsize=8)

    setups = [
        (k, label)
        for k, label in (
            ("one_worker", "1 worker"),
            ("two_workers", "--workers 2"),
            ("two_processes", "2 processes"),
        )
        if k in figures
    ]
    width = 0.8 / len(setups)
    for n, (key, label) in enumerate(setups):
        rates = [figures[key][what]["rate"] for what in ("trivial", "hot", "spread")]
        bars = processes_ax.bar([x + n * width for x in range(3)], rates, width, label=label)
        processes_ax.bar_label(bars, fmt="%.0f", fontsize=7)
    processes_ax.set_xticks(
        [x + width * (len(setups) - 1) / 2 for x in range(3)],
        ["GET /healthz", "usage, hot wallet", "usage, many wallets"],
    )
    processes_ax.set(ylabel="requests / s", title=f"Server processes ({clients_of_raw} clients)")
    processes_ax.legend(fontsize=8)

    m = figures["machine"]
    fig.suptitle(
        f"walletsvc charges, {figures['taken_at']}: {describe(m)}, commit {m.get('commit')}", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
