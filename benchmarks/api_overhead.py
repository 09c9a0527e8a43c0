"""What our plugin API adds on top of the inference server, in one run.

The same streamed completion requests go directly to the inference server (the baseline) and through
our API (daphne: API-key auth, validation, routing, limits, SSE relay), interleaved so that both see
the same machine load:
- sequential: added latency per request (ours minus direct, paired), p50 and p99; target <= 5 ms p50;
- 16 concurrent streams: throughput (tokens/s) through us over direct; target >= 0.85.

A third target is measured in the same run, interleaved too: benchmarks/bare_relay.py, the same daphne
and relay code with nothing of our API (no key, validation, routing, limits or usage rows). Its figures
are what the proxy hop itself costs on this machine; ours minus its is what our API costs.

    python benchmarks/api_overhead.py [--requests 100] [--tokens 16] [--concurrency 16] [--rounds 5] [--per-stream 8]
                                      [--member]

Uses the tiny model built in a temporary data directory; the database and Redis are the embedded
default unless DATABASE_URL / REDIS_URL are set.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from stack import running_stack  # a script: its own folder is on sys.path

PROMPTS = [
    "def fibonacci(n):\n    ",
    "import os\nimport sys\n\n\ndef main():\n    ",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        ",
    "for i in range(10):\n    print(",
]


async def one(client, url: str, key: str, prompt: str, tokens: int) -> tuple[float, int]:
    """Seconds to the last byte of a streamed completion, and the number of events received."""
    body = {"model": "bench", "prompt": prompt, "max_tokens": tokens, "temperature": 0, "stream": True}
    body["ignore_eos"] = True
    started = time.perf_counter()
    events = 0
    headers = {"Authorization": f"Bearer {key}"}
    async with client.stream("POST", f"{url}/v1/completions", json=body, headers=headers) as response:
        if response.status_code != 200:
            raise SystemExit(f"{url}: {response.status_code} {(await response.aread())[:300]!r}")
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                events += 1
    return time.perf_counter() - started, events


async def sequential(urls: dict[str, str], key: str, requests: int, tokens: int) -> dict[str, list[float]]:
    """Milliseconds each URL adds to the same request sent directly, request by request (paired)."""
    import httpx

    added: dict[str, list[float]] = {name: [] for name in urls if name != "direct"}
    names = list(urls)
    async with httpx.AsyncClient(timeout=120) as client:
        for index in range(requests + 5):
            prompt = PROMPTS[index % len(PROMPTS)]
            # Rotate which goes first so that none always meets a warmer cache.
            order = names[index % len(names) :] + names[: index % len(names)]
            seconds = {name: (await one(client, urls[name], key, prompt, tokens))[0] for name in order}
            if index >= 5:  # warm-up
                for name in added:
                    added[name].append((seconds[name] - seconds["direct"]) * 1000)
    return added


async def concurrent(url: str, key: str, streams: int, per_stream: int, tokens: int) -> float:
    import httpx

    limits = httpx.Limits(max_connections=streams * 2)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:

        async def runner(offset: int) -> int:
            total = 0
            for index in range(per_stream):
                _, events = await one(client, url, key, PROMPTS[(offset + index) % len(PROMPTS)], tokens)
                total += events
            return total

        started = time.perf_counter()
        counts = await asyncio.gather(*(runner(offset) for offset in range(streams)))
        return sum(counts) / (time.perf_counter() - started)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100, help="sequential request pairs")
    parser.add_argument("--tokens", type=int, default=16, help="tokens per completion")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--per-stream", type=int, default=8, help="requests per concurrent stream")
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds of the concurrent run (direct, bare relay and ours in turn)"
    )
    parser.add_argument(
        "--inference-threads", type=int, help="torch threads of the inference server (default: every core)"
    )
    parser.add_argument(
        "--member", action="store_true", help="a team member's key under an Enterprise license, not the admin's"
    )
    args = parser.parse_args()

    server_env = {"REFACT_PLUGIN_RATE_LIMIT": "1000000", "REFACT_PLUGIN_MAX_INFLIGHT": str(args.concurrency * 2)}
    with running_stack(
        max_batch=args.concurrency,
        server_env=server_env,
        inference_threads=args.inference_threads,
        bare_relay=True,
        member=args.member,
    ) as stack:
        urls = {"direct": stack.direct, "bare_relay": stack.bare, "ours": stack.ours}
        added = asyncio.run(sequential(urls, stack.key, args.requests, args.tokens))
        rates: dict[str, list[float]] = {name: [] for name in urls}
        names = list(urls)
        for round_index in range(args.rounds):
            for name in names[round_index % 3 :] + names[: round_index % 3]:
                rate = asyncio.run(concurrent(urls[name], stack.key, args.concurrency, args.per_stream, args.tokens))
                rates[name].append(rate)
    rate = {name: statistics.median(values) for name, values in rates.items()}
    p50 = {name: statistics.median(values) for name, values in added.items()}
    p99 = {name: percentile(values, 0.99) for name, values in added.items()}
    ratio = {name: rate[name] / rate["direct"] for name in ("bare_relay", "ours")}
    result = {
        "sequential_requests": len(added["ours"]),
        "tokens_per_request": args.tokens,
        "added_latency_p50_ms": round(p50["ours"], 2),
        "added_latency_p99_ms": round(p99["ours"], 2),
        "concurrent_streams": args.concurrency,
        "direct_tokens_per_s": round(rate["direct"], 1),
        "ours_tokens_per_s": round(rate["ours"], 1),
        "throughput_ratio": round(ratio["ours"], 3),
        # The proxy hop alone (same daphne, same relay code, no API): what any relay costs on this machine.
        "bare_relay_added_latency_p50_ms": round(p50["bare_relay"], 2),
        "bare_relay_added_latency_p99_ms": round(p99["bare_relay"], 2),
        "bare_relay_throughput_ratio": round(ratio["bare_relay"], 3),
        "ours_over_bare_relay_added_p50_ms": round(p50["ours"] - p50["bare_relay"], 2),
        "ours_over_bare_relay_throughput": round(rate["ours"] / rate["bare_relay"], 3),
    }
    print(json.dumps(result, indent=2))  # noqa: T201
    print(  # noqa: T201
        f"added latency p50 {p50['ours']:.2f} ms (target <= 5: {'ok' if p50['ours'] <= 5 else 'MISSED'}), "
        f"p99 {p99['ours']:.2f} ms; throughput at {args.concurrency} streams {ratio['ours']:.3f}x direct "
        f"(target >= 0.85: {'ok' if ratio['ours'] >= 0.85 else 'MISSED'}); a bare relay on the same server: "
        f"+{p50['bare_relay']:.2f} ms, {ratio['bare_relay']:.3f}x"
    )


if __name__ == "__main__":
    main()
