"""Load: N concurrent plugin clients streaming completions from the tiny model through the real server.

Each client loops for a bounded time: a streamed /v1/completions request, read to [DONE], then the
next. Rounds alternate below the per-key in-flight cap (REFACT_PLUGIN_MAX_INFLIGHT; target: zero
errors) and above it (the surplus must be clean 429s: Retry-After and an OpenAI-shaped error), and
the server's resident memory is read after every round (target: no growth after the warm-up).

    python benchmarks/load.py [--cap 8] [--seconds 10] [--rounds 3] [--tokens 16]

Reports requests/s, p50/p99 latency (to the last byte), error rate, 429 rate and RSS per round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field

import httpx
from stack import MODEL, rss_mb, running_stack  # a script: its own folder is on sys.path

PROMPTS = [
    "def fibonacci(n):\n    ",
    "import os\nimport sys\n\n\ndef main():\n    ",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        ",
    "for i in range(10):\n    print(",
]


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    refused: int = 0  # clean 429s
    errors: list[str] = field(default_factory=list)  # anything else that is not a complete stream


def clean_refusal(response: httpx.Response, body: bytes) -> str | None:
    """Why a 429 is not clean, or None when it is."""
    if not response.headers.get("retry-after", "").isdigit():
        return "429 without a Retry-After"
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return f"429 body is not an OpenAI error: {body[:200]!r}"
    if error.get("type") != "rate_limit_error" or not error.get("message"):
        return f"429 error is not OpenAI-shaped: {error}"
    return None


async def client_loop(http: httpx.AsyncClient, url: str, key: str, tokens: int, until: float, tally: Tally) -> None:
    index = 0
    headers = {"Authorization": f"Bearer {key}"}
    while time.monotonic() < until:
        body = {"model": MODEL, "prompt": PROMPTS[index % len(PROMPTS)], "max_tokens": tokens, "stream": True}
        body |= {"temperature": 0, "ignore_eos": True}
        index += 1
        started = time.perf_counter()
        try:
            async with http.stream("POST", f"{url}/v1/completions", json=body, headers=headers) as response:
                if response.status_code == 429:
                    problem = clean_refusal(response, await response.aread())
                    if problem:
                        tally.errors.append(problem)
                    else:
                        tally.refused += 1
                    # What a well-behaved plugin does: wait a little, not the whole Retry-After, in a benchmark.
                    await asyncio.sleep(0.05)
                    continue
                if response.status_code != 200:
                    tally.errors.append(f"{response.status_code}: {(await response.aread())[:200]!r}")
                    continue
                done = False
                async for line in response.aiter_lines():
                    if line.startswith('data: {"error"') or '"error":' in line[:40]:
                        tally.errors.append(f"error event: {line[:200]}")
                    if line == "data: [DONE]":
                        done = True
                if not done:
                    tally.errors.append("stream ended without [DONE]")
                    continue
        except httpx.HTTPError as error:
            tally.errors.append(f"{type(error).__name__}: {error}")
            continue
        tally.latencies.append(time.perf_counter() - started)


async def load_round(url: str, key: str, *, clients: int, seconds: float, tokens: int) -> tuple[Tally, float]:
    tally = Tally()
    limits = httpx.Limits(max_connections=clients * 2, max_keepalive_connections=clients * 2)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        started = time.monotonic()
        until = started + seconds
        await asyncio.gather(*(client_loop(http, url, key, tokens, until, tally) for _ in range(clients)))
        return tally, time.monotonic() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))] if ordered else 0.0


def summary(name: str, clients: int, tally: Tally, elapsed: float, rss: float) -> dict[str, object]:
    attempts = len(tally.latencies) + tally.refused + len(tally.errors)
    return {
        "round": name,
        "clients": clients,
        "requests_per_s": round(len(tally.latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(tally.latencies) * 1000, 1) if tally.latencies else None,
        "p99_ms": round(percentile(tally.latencies, 0.99) * 1000, 1),
        "completed": len(tally.latencies),
        "refused_429": tally.refused,
        "errors": len(tally.errors),
        "error_rate": round(len(tally.errors) / attempts, 4) if attempts else 0.0,
        "first_errors": tally.errors[:3],
        "server_rss_mb": round(rss, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cap", type=int, default=8, help="REFACT_PLUGIN_MAX_INFLIGHT for the benchmark key")
    parser.add_argument("--seconds", type=float, default=10, help="length of each round")
    parser.add_argument("--rounds", type=int, default=3, help="below-cap and above-cap rounds each")
    parser.add_argument("--tokens", type=int, default=16, help="tokens per completion")
    args = parser.parse_args()
    below, above = args.cap, args.cap * 2
    server_env = {"REFACT_PLUGIN_MAX_INFLIGHT": str(args.cap), "REFACT_PLUGIN_RATE_LIMIT": "1000000"}
    results: list[dict[str, object]] = []
    with running_stack(max_batch=args.cap, server_env=server_env) as stack:

        def run(name: str, clients: int, seconds: float) -> dict[str, object]:
            tally, elapsed = asyncio.run(
                load_round(stack.ours, stack.key, clients=clients, seconds=seconds, tokens=args.tokens)
            )
            return summary(name, clients, tally, elapsed, rss_mb(stack.server_pid))

        rss_start = rss_mb(stack.server_pid)
        warm = run("warm-up", below, min(args.seconds, 5))
        for index in range(args.rounds):
            results.append(run(f"below cap #{index + 1}", below, args.seconds))
            results.append(run(f"above cap #{index + 1}", above, args.seconds))
    for row in [warm, *results]:
        print(json.dumps(row))  # noqa: T201
    below_rows = [row for row in results if str(row["round"]).startswith("below")]
    above_rows = [row for row in results if str(row["round"]).startswith("above")]
    rss_after_warm = float(warm["server_rss_mb"])
    rss_end = float(results[-1]["server_rss_mb"])
    growth = rss_end - rss_after_warm
    below_errors = sum(int(row["errors"]) for row in below_rows)
    above_errors = sum(int(row["errors"]) for row in above_rows)
    refused = sum(int(row["refused_429"]) for row in above_rows)
    print(  # noqa: T201
        f"cap {args.cap} in flight per key; {args.tokens} tokens per completion; rounds of {args.seconds:g} s\n"
        f"below cap ({below} clients): {statistics.median(r['requests_per_s'] for r in below_rows)} req/s, "
        f"p50 {statistics.median(r['p50_ms'] for r in below_rows):.0f} ms, "
        f"p99 {max(r['p99_ms'] for r in below_rows)} ms, errors {below_errors} "
        f"(target 0: {'ok' if below_errors == 0 else 'MISSED'})\n"
        f"above cap ({above} clients): {statistics.median(r['requests_per_s'] for r in above_rows)} req/s, "
        f"p50 {statistics.median(r['p50_ms'] for r in above_rows):.0f} ms, "
        f"p99 {max(r['p99_ms'] for r in above_rows)} ms, clean 429s {refused}, other errors {above_errors} "
        f"(target 0: {'ok' if above_errors == 0 and refused > 0 else 'MISSED'})\n"
        f"server RSS: {rss_start:.1f} MB at start, {rss_after_warm:.1f} MB after warm-up, {rss_end:.1f} MB after "
        f"{len(results)} rounds ({growth:+.1f} MB; target no growth: {'ok' if growth < 10 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
