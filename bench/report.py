"""Writing results: ``results.json`` (everything) and ``summary.md`` (the tables a reader needs).

The markdown is rendered from the JSON-ready dict alone, so a summary can be re-rendered
from an old ``results.json``. Missing sections (a run without peers, without the roofline)
are left out, never filled in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson


def write_json(results: dict[str, Any], path: Path) -> Path:
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n")
    return path


def read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    return data


def _num(value: Any, digits: int = 0, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:,.{digits}f}{suffix}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:.0%}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _machine(r: dict[str, Any]) -> list[str]:
    m = r.get("machine", {})
    packages = ", ".join(f"{k} {v}" for k, v in m.get("packages", {}).items())
    return [
        f"- CPU: {m.get('cpu')} ({m.get('cores')} cores; "
        f"{', '.join(m.get('cpu_flags', [])) or 'no AVX-512/AMX'}), "
        f"{m.get('memory_gib')} GiB; {m.get('os')}; Python {m.get('python')}",
        f"- Packages: {packages}",
        f"- Threads everywhere: {r.get('config', {}).get('threads')}; load average at start "
        f"{m.get('load_average')}, at end {r.get('load_average_end')}",
    ]


def _throughput(r: dict[str, Any]) -> list[str]:
    t = r.get("throughput")
    if not t:
        return []
    roof = r.get("roofline")
    header = ["system", "tokens/s", "texts/s", "x reference", "padding", "cos vs ref (mean/min)"]
    if roof:
        header.append("% of fp32 bound")
    rows = []
    for s in t["systems"]:
        agreement = s.get("agreement")
        cos = f"{agreement['cos_mean']:.4f} / {agreement['cos_min']:.4f}" if agreement else "-"
        label = s["label"] + (f" **failed: {s['error']}**" if s.get("error") else "")
        row = [
            label,
            _num(s["tokens_per_s"]),
            _num(s["texts_per_s"], 1),
            _num(s["ratio_to_reference"], 2),
            _pct(s["padding_ratio"]),
            cos,
        ]
        if roof:
            row.append(_pct(s.get("roofline_share")))
        rows.append(row)
    intro = (
        f"{t['texts']} passages, {t['tokens']:,} tokens, {t['rounds']} interleaved round(s); "
        "median tokens/s; `x reference` is the median of per-round ratios to "
        f"`{t['reference']}` measured in the same round."
    )
    return ["## Throughput, same corpus, same threads", "", intro, "", *_table(header, rows)]


def _roofline(r: dict[str, Any]) -> list[str]:
    roof = r.get("roofline")
    if not roof:
        return []
    return [
        "## Roofline",
        "",
        f"- Model: {roof['layers']} layers, hidden {roof['hidden']}, FFN {roof['intermediate']}: "
        f"{roof['linear_flops_per_token'] / 1e6:.1f} MFLOP/token in the projections, "
        f"{roof['flops_per_token_corpus'] / 1e6:.1f} MFLOP/token with attention at this corpus's lengths.",
        f"- fp32 GEMM (numpy, {roof['threads']} threads, best of {len(roof.get('gemm_runs', [1]))} "
        f"measurements in the run): {roof['gemm']['square_gflops']:.0f} GFLOP/s square "
        f"{int(roof['gemm']['size'])}, {roof['gemm']['model_gflops']:.0f} GFLOP/s at the FFN shape "
        f"-> bound {roof['bound_tokens_per_s']:,.0f} tokens/s.",
        "",
    ]


def _sweep(r: dict[str, Any]) -> list[str]:
    sweep = r.get("batch_sweep")
    if not sweep:
        return []
    rows = [
        [
            row["system"],
            row["variant"],
            str(row["batch_size"]),
            _num(row["tokens_per_s"]),
            _pct(row["padding_ratio"]),
        ]
        for row in sweep["rows"]
    ]
    return [
        "## Batch size (no HTTP)",
        "",
        f"{sweep['texts']} passages; batch size = texts per model run "
        "(bare and engine: token budget batch size x max length).",
        "",
        *_table(["system", "variant", "batch", "tokens/s", "padding"], rows),
    ]


def _phase_row(p: dict[str, Any]) -> list[str]:
    lat = p["latency"]
    statuses = ", ".join(f"{k}: {v}" for k, v in p["statuses"].items() if k != "200") or "0"
    rate = f"{p['target_rate']:.1f}/s" if p.get("target_rate") else f"c={p['concurrency']}"
    return [
        p["name"],
        rate,
        _num(p["requests_per_s"], 1),
        _num(p["tokens_per_s"]),
        _num(lat["p50_ms"], 1),
        _num(lat["p90_ms"], 1),
        _num(lat["p99_ms"], 1),
        _num(lat["max_ms"], 1),
        f"{_num(p['server_ms']['p50_ms'], 1)} / {_num(p['server_ms']['p99_ms'], 1)}",
        statuses,
        _pct(p["client_cpu_s"] / p["wall_s"] if p["wall_s"] else None),
    ]


def _http(r: dict[str, Any]) -> list[str]:
    h = r.get("http")
    if not h or not h["phases"]:
        return []
    header = [
        "phase",
        "load",
        "req/s",
        "tokens/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "server p50 / p99 ms",
        "errors",
        "client CPU",
    ]
    rows = [_phase_row(p) for p in h["phases"]]
    lengths = [
        [p["name"].removeprefix("length "), _num(p["tokens_per_s"]), _num(p.get("bare_tokens_per_s")),
         _num((p["tokens_per_s"] / p["bare_tokens_per_s"]) if p.get("bare_tokens_per_s") else None, 2)]
        for p in h["phases"] if p["profile"].startswith("length:")
    ]  # fmt: skip
    out = [
        f"## Server over HTTP ({h['variant']})",
        "",
        "Closed loop: N clients each waiting for its answer; open loop: Poisson arrivals, latency from the "
        "scheduled send time. Ingest requests carry 20 passages; queries one short text. `server p50 / p99` "
        "is the server's own `x-total-time` (tokenize + queue + inference + post-processing, no HTTP). "
        "`client CPU` is the load generator's share of one core: on a 2-core machine it competes with the "
        "server.",
        "",
        *_table(header, rows),
    ]
    if lengths:
        out += [
            "By input length (ingest profile):",
            "",
            *_table(["class", "server tokens/s", "bare loop tokens/s", "server / bare"], lengths),
        ]
    return out


def _callers(r: dict[str, Any]) -> list[str]:
    c = r.get("http", {}).get("callers")
    if not c:
        return []
    header = ["phase", "load", "req/s", "tokens/s", "p50 ms", "p90 ms", "p99 ms", "max ms"]
    header += ["server p50 / p99 ms", "errors", "client CPU"]
    alone = [[*_phase_row(p)[:1], _num(p["texts_per_s"], 1), *_phase_row(p)[1:]] for p in c["alone"]]
    figures = c["ratios"]
    mixed = []
    for m in c["mixed"]:
        iso = figures["isolation"][m["shape"]]
        q = m["query_under_ingest"]["queue_ms"]
        mixed.append(
            [
                m["shape"],
                f"{_num(iso['query_p50_ms'], 1)} / {_num(iso['query_p99_ms'], 1)}",
                _num(iso["p99_over_idle"], 2),
                f"{_num(q['p50_ms'], 1)} / {_num(q['p99_ms'], 1)}",
                f"{_num(m['ingest_alone_texts_per_s'], 1)} / "
                f"{_num(m['ingest_with_queries']['texts_per_s'], 1)}",
                _num(iso["ingest_share"], 2),
                str(m["query_under_ingest"]["errors"] + m["ingest_with_queries"]["errors"]),
            ]
        )
    tiny = [[name, _num(v, 2)] for name, v in figures["one_chunk_over_twenty"].items()]
    burst = c.get("burst")
    burst_lines = (
        [
            f"Burst: {burst['requests']} requests of 20 texts at once with `x-request-timeout: "
            f"{burst['request_timeout_s']:g}`, each retried after Retry-After: all answered in "
            f"{_num(burst['wall_s'], 1)} s after {burst['attempts']} attempts "
            f"({', '.join(f'{k}: {v}' for k, v in burst['statuses'].items())}); goodput "
            f"{_num(burst['goodput_texts_per_s'], 1)} texts/s, "
            f"{_num(figures.get('burst_goodput_over_steady'), 2)} of the steady semantic_text rate.",
            "",
        ]
        if burst
        else []
    )
    return [
        f"## Callers ({c['seconds']:.0f} s per phase)",
        "",
        "Each caller alone. ES pipeline: one chunk per request to `/embed?priority=bulk`; semantic_text: 20 "
        "chunks per request; client bulk: `rag ingest`'s 32 per request; queries: one short text with "
        f"`X-Embed-Priority: interactive`, Poisson arrivals at {c['query_rate']:.0f}/s.",
        "",
        *_table([header[0], "texts/s", *header[1:]], alone),
        f"Queries at {c['query_rate']:.0f}/s during each ingest shape (idle query p50 / p99: "
        f"{_num(figures['idle_query_p50_ms'], 1)} / {_num(figures['idle_query_p99_ms'], 1)} ms):",
        "",
        *_table(
            [
                "ingest shape",
                "query p50 / p99 ms",
                "p99 / idle p99",
                "query queue p50 / p99 ms",
                "ingest texts/s alone / with queries",
                "with / alone",
                "errors",
            ],
            mixed,
        ),
        "Texts/s of one-chunk requests over 20-chunk requests of the same texts:",
        "",
        *_table(["one-chunk shape", "ratio"], tiny),
        *burst_lines,
    ]


def _targets(r: dict[str, Any]) -> list[str]:
    targets = r.get("targets")
    if not targets:
        return []
    rows = []
    for t in targets:
        value = t["value"]
        shown = " / ".join(_num(v, 1) for v in value) if isinstance(value, list) else _num(value, 2)
        goal = "report" if t["target"] is None else f"{'<=' if t.get('at_most') else '>='} {t['target']}"
        met = "-" if t["met"] is None else ("yes" if t["met"] else "**no**")
        rows.append([t["name"], shown, goal, met])
    return ["## Targets", "", *_table(["target", "measured", "goal", "met"], rows)]


def render(results: dict[str, Any], plots: Sequence[str] = ()) -> str:
    """The markdown summary of one run."""
    r = results
    model = r.get("model", {})
    corpus = r.get("corpus", {})
    tokens = corpus.get("passage_tokens", {})
    lines = [
        f"# Benchmark: {model.get('name')} ({r.get('config', {}).get('suite')} suite)",
        "",
        f"Run {r.get('started')} to {r.get('finished')} ({r.get('duration_s')} s). Model {model.get('dir')} "
        f"({model.get('dims')}-d, max {model.get('max_length')} tokens, "
        f"variants {', '.join(model.get('variants', []))}).",
        f"Corpus: {corpus.get('source')} (digest {corpus.get('digest')}), passages median "
        f"{_num(tokens.get('median'))} tokens (p10 {_num(tokens.get('p10'))}, p90 {_num(tokens.get('p90'))}, "
        f"max {tokens.get('max')}); queries median "
        f"{_num(corpus.get('query_tokens', {}).get('median'))} tokens.",
        "",
        *_machine(r),
        "",
        *_targets(r),
        *_throughput(r),
        *_roofline(r),
        *_sweep(r),
        *_http(r),
        *_callers(r),
    ]
    if plots:
        lines += ["## Plots", "", *[f"![{Path(p).stem}]({Path(p).name})" for p in plots], ""]
    if r.get("notes"):
        lines += ["## Notes", "", *[f"- {n}" for n in r["notes"]], ""]
    return "\n".join(lines)
