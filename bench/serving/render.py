"""Render bench/.work/serving/results.json (from run.py) as bench/serving/RESULTS.md.

.venv/bin/python bench/serving/render.py [--note "text about the machine during the run"]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parents[1] / "bench" / ".work" / "serving" / "results.json"
OURS = "onnxops"
PEERS = ("kserve", "mlserver", "mlserver+batch")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def _table(servers: dict[str, Any], conc: list[str]) -> list[str]:
    head = "| server | " + " | ".join(f"c={c} req/s | p50 ms | p99 ms" for c in conc)
    head += " | CPU µs/req (c=64) | RSS idle / peak MiB |"
    lines = [head, "|" + "---|" * (2 + 3 * len(conc) + 1)]
    for label, s in servers.items():
        cells = []
        for c in conc:
            p = s["points"][c]
            cells.append(f"{p['rps']:,.0f} | {p['p50_ms']:.2f} | {p['p99_ms']:.2f}")
        cpu = s["points"].get("64", s["points"][conc[-1]])["cpu_us_per_req"]
        rss = f"{s['rss_idle_kib'] / 1024:.0f} / {s['rss_peak_kib'] / 1024:.0f}"
        name = f"**{label}**" if label == OURS else label
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {cpu:.0f} | {rss} |")
    return lines


def _verdict(model: str, entry: dict[str, Any], conc: list[str]) -> list[str]:
    servers = entry["servers"]
    ours = servers[OURS]
    peers = {k: v for k, v in servers.items() if k in PEERS}
    out = []
    for c in conc:
        best_label = max(peers, key=lambda k: peers[k]["points"][c]["rps"])
        best = peers[best_label]["points"][c]
        mine = ours["points"][c]
        lowest_p99 = min(v["points"][c]["p99_ms"] for v in peers.values())
        out.append(
            f"- {model}, c={c}: {mine['rps']:,.0f} req/s = **{mine['rps'] / best['rps']:.1f}x** the best "
            f"peer ({best_label}, {best['rps']:,.0f}); p99 {mine['p99_ms']:.2f} ms vs the lowest "
            f"peer p99 {lowest_p99:.2f} ms ({'lower' if mine['p99_ms'] < lowest_p99 else 'NOT lower'})"
        )
    floor = servers.get("uvicorn-floor")
    if floor:
        top = conc[-1]
        share = ours["points"][top]["rps"] / floor["points"][top]["rps"]
        out.append(
            f"- {model}, c={top}: onnxops runs at {share:.0%} of the uvicorn floor "
            f"({floor['points'][top]['rps']:,.0f} req/s answering without a model)"
        )
    raw = entry["raw"]
    c1 = ours["points"]["1"]
    out.append(
        f"- {model}: raw `session.run` {raw['mean_us']:.1f} µs/call (p50 {raw['p50_us']:.1f}); "
        f"onnxops at c=1: p50 {c1['p50_ms'] * 1000:.0f} µs end to end over loopback → "
        f"**{c1['p50_ms'] * 1000 - raw['p50_us']:.0f} µs** per-request overhead over raw; server CPU "
        f"{c1['cpu_us_per_req']:.0f} µs/request (kernel TCP included) vs {raw['mean_us']:.1f} µs in ORT"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    res = json.loads(RESULTS.read_text())
    first = next(iter(res["models"].values()))
    conc = list(next(iter(first["servers"].values()))["points"])
    lines = [
        "# Serving benchmark: onnxops-serving vs KServe vs MLServer",
        "",
        f"Run {res['started']} on {res['cpus']} CPUs ({_cpu_model()}); server pinned to CPU 0 "
        "(`taskset -c 0`), load generator `wrk -t1` pinned to CPU 1, keep-alive connections, "
        "one-row OIP v2 JSON `POST /v2/models/{m}/infer`. "
        f"{res['seconds_per_point']:.0f} s per point, {res['rounds']} interleaved rounds "
        "(all servers up at once, each point run round-robin over the servers), medians reported.",
        f"Load average before / after: {res['loadavg_before'][0]:.2f} / {res['loadavg_after'][0]:.2f}.",
        "",
        f"Peers: KServe {res['versions']['kserve']} (python `ModelServer`, custom `kserve.Model`, "
        "1 worker, gRPC off, access and latency logging off); MLServer "
        f"{res['versions']['mlserver']} (custom `MLModel` over ONNX Runtime, httptools installed, "
        "`parallel_workers=0`, `debug=false`; `+batch` = adaptive batching 32 / 2 ms). "
        "Every server runs the same `model.onnx` with the same ONNX Runtime session options "
        "(1 intra-op thread, no spinning). `onnxops+batch` = our batching at 32 / 2 ms; "
        "`onnxops` is the default (batching off) and the one the goals are checked against. "
        "Ours also runs drift monitoring and the feedback cache on every request (model.json "
        "has feature_stats); the peers do neither. `uvicorn-floor` is not a peer: a bare ASGI "
        "app on the same uvicorn that answers a fixed body without running a model — the cost "
        "of the transport alone.",
        "",
        "Reproduce: `.venv/bin/python bench/serving/run.py --seconds 4 --rounds 3 && "
        ".venv/bin/python bench/serving/render.py`.",
        "",
    ]
    if args.note:
        lines += [f"**Machine note:** {args.note}", ""]
    lines += ["## Verdict", ""]
    for model, entry in res["models"].items():
        lines += _verdict(model, entry, conc)
    for model, entry in res["models"].items():
        lines += ["", f"## {model}", ""]
        lines += _table(entry["servers"], conc)
    lines += [
        "",
        "CPU µs/req is the server process's user+system CPU time over the requests it answered "
        "(from /proc), which is far less sensitive to other work on the machine than req/s and p99.",
        "",
    ]
    target = HERE / "RESULTS.md"
    # A hand-written "Reading the figures" section at the end survives re-rendering.
    old = target.read_text() if target.exists() else ""
    marker = "## Reading the figures"
    kept = old[old.index(marker) :] if marker in old else ""
    target.write_text("\n".join(lines) + ("\n" + kept if kept else ""))
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
