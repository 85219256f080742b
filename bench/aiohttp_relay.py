"""The floor: a pass-through relay with no logic at all (aiohttp server + aiohttp client, uvloop).

    python -m bench.aiohttp_relay --port 9300 --upstream http://127.0.0.1:9100

What any aiohttp-based proxy costs before it does anything; `bench_proxy --floor` compares hermes-proxy with it.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
import uvloop
from aiohttp import web

SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)


def make_app(upstream: str) -> web.Application:
    app = web.Application()
    url = f"{upstream}/v1/chat/completions"

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))
        yield
        await app[SESSION].close()

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with app[SESSION].post(url, data=body, headers={"Content-Type": "application/json"}) as upstream_reply:
            if upstream_reply.content_type != "text/event-stream":
                return web.Response(body=await upstream_reply.read(), content_type="application/json")
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            async for chunk in upstream_reply.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/v1/chat/completions", relay)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=9300)
    parser.add_argument("--upstream", default="http://127.0.0.1:9100")
    args = parser.parse_args()
    web.run_app(make_app(args.upstream), host="127.0.0.1", port=args.port, print=None, access_log=None,
                loop=uvloop.new_event_loop(), backlog=4096)


if __name__ == "__main__":
    main()
