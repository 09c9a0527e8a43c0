"""The reference api_overhead.py measures our API against besides the inference server itself: the same
daphne, set up as `manage.py serve` sets it up, relaying the same requests with the same relay code
(hosting.proxy, hosting.asgi) and nothing else: no API key, no validation, no routing, no limits, no
usage rows. What a request costs here is the proxy hop itself; what ours costs beyond it is our API.

    python benchmarks/bare_relay.py --port PORT --upstream http://127.0.0.1:INFERENCE_PORT
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the inference server")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refact_site.settings")
    import django

    django.setup()
    # daphne.server installs the asyncio Twisted reactor: before anything else Twisted.
    from daphne.endpoints import build_endpoint_description_strings
    from daphne.server import Server

    from hosting.asgi import send_stream
    from hosting.plugin_api import Stream
    from hosting.proxy import relay_events, upstream_post
    from refact_site.daphne_limits import http_factory_install

    async def application(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        upstream = await upstream_post(f"{args.upstream}{scope['path']}", b"".join(chunks))

        async def events():
            try:
                async for event in relay_events(upstream, caps_version=1, counter={"events": 0}):
                    yield event
            finally:
                upstream.close()

        await send_stream(Stream(events()), receive, send)

    http_factory_install()
    gc.collect()
    gc.freeze()
    Server(
        application=application, endpoints=build_endpoint_description_strings(host="127.0.0.1", port=args.port)
    ).run()


if __name__ == "__main__":
    main()
