"""PNG plots of a run (matplotlib, Agg backend: no display needed).

- ``throughput_vs_concurrency.png``: ingest tokens/s and p99 latency by client count;
- ``latency_cdf.png``: latency distribution of the query phases (closed, open, and alone and
  under each ingest caller);
- ``peers.png``: tokens/s of every system as a multiple of the reference.

Each function returns the file it wrote, or None when the run has no data for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

_COLORS = {"reference": "#888888", "peer": "#4c72b0", "ours": "#dd8452"}


def throughput_vs_concurrency(results: dict[str, Any], out: Path) -> Path | None:
    phases = [p for p in results.get("http", {}).get("phases", []) if p["profile"] == "ingest"]
    if not phases:
        return None
    xs = [p["concurrency"] for p in phases]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(xs, [p["tokens_per_s"] for p in phases], "o-", color=_COLORS["ours"], label="tokens/s")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent clients (20 passages per request)")
    ax.set_ylabel("tokens/s")
    ax.set_ylim(bottom=0)
    lat = ax.twinx()
    lat.plot(xs, [p["latency"]["p99_ms"] for p in phases], "s--", color="#55a868", label="p99 latency")
    lat.set_ylabel("p99 latency (ms)")
    lat.set_ylim(bottom=0)
    for x, p in zip(xs, phases, strict=True):
        if p["errors"]:
            refused = ", ".join(f"{n}x{code}" for code, n in p["statuses"].items() if code != "200")
            ax.annotate(
                refused, (x, p["tokens_per_s"]), textcoords="offset points", xytext=(0, 8), fontsize=7
            )
    ax.set_title(f"{results['model']['name']} ({results['http']['variant']}): ingest over HTTP")
    fig.legend(loc="upper left", bbox_to_anchor=(0.1, 0.9), fontsize=8)
    fig.tight_layout()
    path = out / "throughput_vs_concurrency.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def latency_cdf(results: dict[str, Any], out: Path) -> Path | None:
    http = results.get("http", {})
    series = [(p["name"], p["latencies_ms"]) for p in http.get("phases", []) if p["profile"] == "query"]
    callers = http.get("callers")
    if callers:
        rate = callers["query_rate"]
        series += [(f"query {rate:.0f}/s alone", p["latencies_ms"]) for p in callers["alone"][:1]]
        series += [
            (f"query {rate:.0f}/s under {m['shape']}", m["query_under_ingest"]["latencies_ms"])
            for m in callers["mixed"]
        ]
    series = [(name, xs) for name, xs in series if xs]
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, xs in series:
        n = len(xs)
        ax.plot(sorted(xs), [(i + 1) / n for i in range(n)], label=name)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("share of requests")
    ax.set_title(f"{results['model']['name']} ({http['variant']}): single short texts over HTTP")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "latency_cdf.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def peers(results: dict[str, Any], out: Path) -> Path | None:
    rows = [s for s in results.get("throughput", {}).get("systems", []) if s.get("ratio_to_reference")]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(rows) + 1.5))
    labels = [s["key"] for s in rows]
    values = [s["ratio_to_reference"] for s in rows]
    bars = ax.barh(labels, values, color=[_COLORS.get(s["role"], "#999999") for s in rows])
    for bar, s in zip(bars, rows, strict=True):
        ax.text(
            bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {s['ratio_to_reference']:.2f}x "
            f"({s['tokens_per_s']:,.0f} tok/s)", va="center", fontsize=8,
        )  # fmt: skip
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("throughput / sentence-transformers (same run)")
    ax.set_xlim(0, max(values) * 1.35)
    ax.set_title(f"{results['model']['name']}: same corpus, {results['config']['threads']} threads")
    fig.tight_layout()
    path = out / "peers.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw_all(results: dict[str, Any], out: Path) -> list[Path]:
    made = [f(results, out) for f in (peers, throughput_vs_concurrency, latency_cdf)]
    return [p for p in made if p is not None]
