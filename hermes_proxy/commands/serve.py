"""``hermes-proxy serve``: report what will run, start the app, bind, and only then say where it listens.

Runs the app with aiohttp's ``AppRunner``/``TCPSite`` (not ``web.run_app``) so that the port actually bound is known
(``--port 0``) and the "listening" line comes after the bind succeeded. Shutdown is aiohttp's: SIGTERM/SIGINT stop
accepting, let running requests finish up to ``shutdown_timeout_s``, then run the cleanup contexts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import signal
import sys
from typing import Any

from aiohttp import web

from hermes_proxy.appkeys import LEDGER
from hermes_proxy.commands.check import describe, left_out_notice, warnings_for
from hermes_proxy.commands.workers import (
    READY,
    die_with_parent,
    refuse_unsafe,
    reserve_port,
    supervise,
    workers_wanted,
)
from hermes_proxy.config import Config, check_exposure, default_data_dir, load_config
from hermes_proxy.errors import HermesError
from hermes_proxy.pricing import resolve_prices
from hermes_proxy.tokens import load_token_counter

SIMULATED_HELP = """\
Running on the built-in SIMULATED Hermes 4 (no API key found): answers are canned, for trying things out.
To use the real model, export a key and restart:
    export OPENROUTER_API_KEY=sk-or-...      # or NOUS_API_KEY=...
or write a config file (see config.example.toml) and run: hermes-proxy serve --config hermes.toml"""


def port_number(text: str) -> int:
    """``--port``: like ``server.port``, 1-65535, or 0 for any free port."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number (1-65535, or 0 for any free port), got {text!r}"
                                         ) from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 1-65535 (or 0 for any free port), got {value}")
    return value


def add_parser(subparsers: Any) -> None:
    serve = subparsers.add_parser("serve", help="run the OpenAI-compatible proxy")
    serve.add_argument("--config", help="config file (default: $HERMES_PROXY_CONFIG or the user config file)")
    serve.add_argument("--host", help="bind address (default from config: 127.0.0.1)")
    serve.add_argument("--port", type=port_number, help="port (default from config: 8787; 0: any free port, printed)")
    serve.add_argument("--workers", help="processes serving the port: a number, or auto (one per core); default from "
                                         "config: server.workers (auto)")
    serve.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # one of --workers' processes (internal)
    serve.set_defaults(handler=run)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (about a third less CPU per proxied request), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(args: argparse.Namespace) -> int:
    from hermes_proxy.logs import configure_logging

    config = load_config(args.config)
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    check_exposure(config.server, host, "--host" if args.host else "server.host")
    workers = 1 if args.worker is not None else workers_wanted(args.workers, config).count
    refuse_unsafe(config, workers)
    with configure_logging(config):
        return _run(args, config, host, port, workers)


def _run(args: argparse.Namespace, config: Config, host: str, port: int, workers: int) -> int:
    from hermes_proxy.app import create_app

    worker = args.worker
    counter = load_token_counter(config.tokens, data_dir=default_data_dir())
    prices = resolve_prices(config)
    if worker is None:  # the workers of --workers N are quiet: their parent said all this once
        print(describe(config, counter, prices, workers_asked=args.workers), flush=True)
        for warning in warnings_for(config, prices):
            print(f"warning: {warning}", flush=True)
        notice = left_out_notice(config)
        if notice:
            print("\n".join(notice), file=sys.stderr, flush=True)
        if config.simulated_only:
            print(SIMULATED_HELP, flush=True)
    if workers > 1:
        sock = reserve_port(host, port)
        bound = sock.getsockname()[1]
        argv = ["serve", *(["--config", args.config] if args.config else []), "--host", host, "--port", str(bound)]
        return supervise(argv, workers, sock, listening_line(host, bound, workers))
    if worker is not None:
        die_with_parent()
    app = create_app(config, counter=counter, prices=prices)
    loop = new_event_loop()
    main = loop.create_task(_serve(app, config, host, port, worker=worker))
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        _ignore_further_stop_signals(loop)
    finally:
        try:
            if not main.done():
                main.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            asyncio.set_event_loop(None)
            loop.close()
    return 0


def listening_line(host: str, port: int, workers: int = 1) -> str:
    shown = f"[{host}]" if ":" in host else host
    processes = f"{workers} workers; " if workers > 1 else ""
    return f"hermes-proxy listening on http://{shown}:{port}/v1  ({processes}OpenAI base_url; Ctrl+C to stop)"


async def _serve(app: web.Application, config: Config, host: str, port: int, *, worker: int | None = None) -> None:
    runner = web.AppRunner(app, handle_signals=True, access_log=None,
                           shutdown_timeout=config.server.shutdown_timeout_s)
    await runner.setup()  # the cleanup contexts start here: ledger, rate limiter, gateway
    try:
        site = web.TCPSite(runner, host or None, port, backlog=config.server.listen_backlog,
                           reuse_port=worker is not None)
        try:
            await site.start()
        except OSError as exc:
            raise HermesError(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                              "(is another hermes-proxy running? choose another --port)") from None
        bound = _bound_port(runner, port)
        if not worker:  # one process, or the first worker (its parent relays what it prints)
            for line in await first_key_hint(app, config):
                print(line, flush=True)
        print(READY if worker is not None else listening_line(host, bound), flush=True)
        await asyncio.Event().wait()  # until SIGTERM/SIGINT cancels this task
    finally:
        await runner.cleanup()


def _bound_port(runner: web.AppRunner, asked: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return asked


async def first_key_hint(app: web.Application, config: Config) -> list[str]:
    """With ``auth = "keys"`` and no active key in the ledger: the one command that creates the first key."""
    if config.server.auth != "keys":
        return []
    keys = await app[LEDGER].list_keys()
    if any(key.active for key in keys):
        return []
    team = config.teams[0].name
    if config.ledger.url.startswith("memory://"):
        return ['No team key yet, and the ledger is in memory (ledger.url = "memory://"): a key made by '
                "`hermes-proxy keys create` would live in that command's memory, not here. Create one with "
                f"POST /admin/keys {{\"team\": \"{team}\"}} and the admin key (${config.server.admin_key_env}), "
                "or use a sqlite:/// ledger."]
    where = f" --config {shlex.quote(str(config.source))}" if config.source is not None else ""
    return ['No team key yet (auth = "keys": every request needs one). Create the first one with:',
            f"    hermes-proxy keys create --team {shlex.quote(team)}{where}"]


def _ignore_further_stop_signals(loop: asyncio.AbstractEventLoop) -> None:
    """Shutting down already (running requests finishing, settles being written, up to shutdown_timeout_s): a second
    SIGTERM or Ctrl+C must not break that off half-way."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, _already_stopping)


def _already_stopping() -> None:
    print("hermes-proxy: already stopping (running requests are finishing)", file=sys.stderr, flush=True)


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
