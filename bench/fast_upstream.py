"""A fast fake OpenAI-compatible upstream for benchmarks: fixed answers, no delays (or a fixed per-chunk delay).

    python -m bench.fast_upstream --port 9100 [--chunks 50] [--chunk-delay-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web

ANSWER = "Hermes 4 is a hybrid reasoning model. " * 4


def make_app(chunks: int, chunk_delay_s: float) -> web.Application:
    completion = json.dumps({
        "id": "bench", "object": "chat.completion", "model": "Hermes-4-405B",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 40, "total_tokens": 60},
    }).encode()
    piece = json.dumps({"id": "bench", "object": "chat.completion.chunk", "model": "Hermes-4-405B",
                        "choices": [{"index": 0, "delta": {"content": "tok "}, "finish_reason": None}]})
    event = f"data: {piece}\n\n".encode()
    final = ("data: " + json.dumps({"id": "bench", "object": "chat.completion.chunk", "model": "Hermes-4-405B",
                                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}) + "\n\n"
             + "data: " + json.dumps({"id": "bench", "object": "chat.completion.chunk", "model": "Hermes-4-405B",
                                      "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": chunks,
                                                               "total_tokens": 20 + chunks}})
             + "\n\ndata: [DONE]\n\n").encode()

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):
            return web.Response(body=completion, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for _ in range(chunks):
            if chunk_delay_s:
                await asyncio.sleep(chunk_delay_s)
            await response.write(event)
        await response.write(final)
        await response.write_eof()
        return response

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "Hermes-4-405B"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    web.run_app(make_app(args.chunks, args.chunk_delay_ms / 1000), host="127.0.0.1", port=args.port, print=None, backlog=4096,
                access_log=None)


if __name__ == "__main__":
    main()
