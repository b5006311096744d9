"""CPU per ``POST /api/v1/route`` in one process: the fast path's whole response beside ``Router.predict``.

    .venv/bin/python bench/request_cost.py --artifact var/models/1 [--requests 2000] [--json FILE]

The difference is what Django's request machinery costs the route (the middleware chain, signals,
URL resolution, content negotiation, DRF's response and renderer, throttles, metrics), without a
server or a load generator sharing the cores. Both run on this thread, in alternating blocks of 200,
timed as thread CPU time; one Banking77 test text per request, the same texts for both. The
database, the token and the active version are set up as ``bench/route_bench.py`` sets them up.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from route_bench import banking77, prepare_database, server_env  # noqa: E402

BLOCK = 200


def route_scope(token: str, length: int) -> dict:
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Token {token}".encode()),
        (b"content-length", str(length).encode()),
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/route",
        "raw_path": b"/api/v1/route",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8731),
    }


def measure(token: str, texts: list[str], requests: int) -> dict[str, float]:
    """Median CPU ms per request of each way, over alternating blocks."""
    from routing.fast_route import SyncRouteHandler
    from routing.router import get_router

    handler, router = SyncRouteHandler(), get_router()
    bodies = [json.dumps({"text": text}).encode() for text in texts]

    def respond(i: int) -> None:
        body = bodies[i % len(bodies)]
        response = handler.respond(route_scope(token, len(body)), io.BytesIO(body))
        if response.status_code != 200:
            raise SystemExit(f"route answered {response.status_code}: {response.content[:300]!r}")

    def predict(i: int) -> None:
        router.predict([texts[i % len(texts)]])

    ways = {"response": respond, "router_predict": predict}
    blocks: dict[str, list[float]] = {name: [] for name in ways}
    for i in range(BLOCK):  # warm-up: model, caches, first-request imports
        respond(i)
    for start in range(0, requests, BLOCK):
        for name, way in ways.items():
            began = time.thread_time()
            for i in range(start, start + BLOCK):
                way(i)
            blocks[name].append((time.thread_time() - began) * 1000 / BLOCK)
    result = {f"{name}_cpu_ms": statistics.median(values) for name, values in blocks.items()}
    result["machinery_cpu_ms"] = result["response_cpu_ms"] - result["router_predict_cpu_ms"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", type=Path, required=True, help="a published model version directory")
    parser.add_argument("--requests", type=int, default=2000, help="per way, in blocks of 200")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="request-cost-") as tmp:
        token = prepare_database(server_env(Path(tmp)), args.artifact)
        result = measure(token, [text for text, _ in banking77("test")], args.requests)
    print(f"{'POST /api/v1/route, one process':<36}{'CPU ms/request (median of blocks)':>36}")
    for name, value in result.items():
        print(f"{name:<36}{value:>36.3f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
