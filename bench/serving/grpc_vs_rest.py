"""gRPC against REST on the same server process, and against MLServer's gRPC, in one run.

    .venv/bin/python bench/serving/grpc_vs_rest.py [--seconds 4] [--rounds 2] [--models iris]

Servers pinned to CPU 0, load generators to CPU 1, as run.py does: REST is driven by wrk
(one-row OIP v2 JSON), gRPC by grpcload (grpcload/, built here with Go: one call in flight on
each of c connections, the same one-row ModelInfer with typed fp32_contents, which every OIP
server accepts). Points are interleaved round-robin over servers and protocols; medians are
reported. Writes bench/.work/serving/grpc-results.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "serving-image"))

import run as bench  # noqa: E402
from onnxops_serving.proto import inference_pb2 as pb  # noqa: E402

LOADER = bench.WORK / "grpcload"


def build_loader() -> Path:
    sources = [*(HERE / "grpcload").glob("*.go"), HERE / "grpcload" / "go.mod"]
    if not LOADER.exists() or LOADER.stat().st_mtime < max(p.stat().st_mtime for p in sources):
        print("building grpcload ...", flush=True)
        bench._sh(["go", "build", "-o", str(LOADER), "."], cwd=HERE / "grpcload")
    return LOADER


def request_file(model: str, folder: Path) -> Path:
    row = json.loads((folder / "row.json").read_text())
    request = pb.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name="X", datatype="FP32", shape=[1, len(row[0])])
    tensor.contents.fp32_contents.extend(row[0])
    path = bench.WORK / f"{model}.grpc.bin"
    path.write_bytes(request.SerializeToString())
    return path


def grpcload(target: str, request: Path, conns: int, seconds: float, warmup: float = 0) -> dict:
    out = subprocess.run(
        ["taskset", "-c", bench.LOAD_CPU, str(LOADER), "-target", target, "-request",
         str(request), "-c", str(conns), "-d", f"{seconds}s", "-warmup", f"{warmup}s"],
        capture_output=True, text=True, check=True, env={**os.environ, "GOMAXPROCS": "1"},
    ).stdout  # fmt: skip
    return dict(json.loads(out))


def _ours(model: str, folder: Path, port: int) -> tuple[list[str], dict[str, str], Path]:
    cmd, env, cwd = bench._ours(False)(model, folder, port)
    return cmd, {**env, "ONNXOPS_GRPC_PORT": str(port + 1)}, cwd


# MLServer's settings in run.py already put its gRPC server on port + 1.
PEERS = [bench.Peer("onnxops", _ours), bench.Peer("mlserver", bench._mlserver(False))]


def bench_model(model: str, folder: Path, conc: list[int], seconds: float, rounds: int) -> dict:
    row = json.loads((folder / "row.json").read_text())
    body = json.dumps(
        {"inputs": [{"name": "X", "shape": [1, len(row[0])], "datatype": "FP32", "data": row}]}
    )
    lua = bench.WORK / f"{model}.lua"
    lua.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = '{body}'\n"
    )
    request = request_file(model, folder)
    servers: list[tuple[bench.Running, int]] = []
    points: dict[str, dict[str, list[dict]]] = {}
    try:
        for i, peer in enumerate(PEERS):
            port = bench.PORT + 10 * i
            servers.append((bench.Running(peer, model, folder, port), port + 1))
        for server, grpc_port in servers:
            server.wait_ready()
            bench.wrk(server.url + "/infer", lua, 8, 2)
            warm = grpcload(f"127.0.0.1:{grpc_port}", request, 8, 1, warmup=1)
            assert warm["errors"] == 0, f"{server.label} gRPC: {warm.get('first_error')}"
        for c in conc:
            for _ in range(rounds):
                for server, grpc_port in servers:
                    rest = bench.wrk(server.url + "/infer", lua, c, seconds)
                    grpc_point = grpcload(f"127.0.0.1:{grpc_port}", request, c, seconds)
                    for proto, point in (("rest", rest), ("grpc", grpc_point)):
                        key = f"{server.label} {proto}"
                        points.setdefault(key, {}).setdefault(str(c), []).append(point)
        return {
            key: {
                c: {k: bench._median([r[k] for r in runs]) for k in ("rps", "p50_ms", "p99_ms")}
                | {"errors": sum(r.get("errors", r.get("non2xx", 0)) for r in runs)}
                for c, runs in by_c.items()
            }
            for key, by_c in points.items()
        }
    finally:
        for server, _ in servers:
            server.close()


def table(model: str, result: dict, conc: list[int]) -> str:
    head = (
        "| server, protocol | " + " | ".join(f"c={c} req/s | p50 ms | p99 ms" for c in conc) + " |"
    )
    lines = [f"### {model}", "", head, "|---" * (1 + 3 * len(conc)) + "|"]
    for key, by_c in result.items():
        cells = []
        for c in conc:
            p = by_c[str(c)]
            cells += [f"{p['rps']:,.0f}", f"{p['p50_ms']:.2f}", f"{p['p99_ms']:.2f}"]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", default="iris")
    parser.add_argument("--concurrency", default="1,8,64")
    args = parser.parse_args()
    bench.WORK.mkdir(parents=True, exist_ok=True)
    versions = bench.ensure_venvs(("mlserver",))
    build_loader()
    models_dir = bench.WORK / "models"
    if not (models_dir / "mlp" / "row.json").exists():
        bench._sh([str(bench.OUR_PY), str(HERE / "models.py"), str(models_dir)])
    conc = [int(c) for c in args.concurrency.split(",")]
    results: dict[str, object] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds_per_point": args.seconds,
        "rounds": args.rounds,
        "loadavg_before": os.getloadavg(),
        "versions": versions,
        "models": {},
    }
    for model in args.models.split(","):
        result = bench_model(model, models_dir / model, conc, args.seconds, args.rounds)
        results["models"][model] = result  # type: ignore[index]
        print(table(model, result, conc), flush=True)
    results["loadavg_after"] = os.getloadavg()
    (bench.WORK / "grpc-results.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {bench.WORK / 'grpc-results.json'}")


if __name__ == "__main__":
    main()
