"""``hermes-proxy keys create|list|revoke``: team API keys, stored in the configured ledger.

``keys create`` prints the new key once, alone on stdout (so ``KEY=$(hermes-proxy keys create --team t)`` works);
what it is and the reminder to store it go to stderr. Only the key's hash is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from hermes_proxy import keys as keyutil
from hermes_proxy.config import Config, load_config
from hermes_proxy.errors import NotFound
from hermes_proxy.ledger import open_ledger
from hermes_proxy.ledger.base import KeyRecord, Ledger
from hermes_proxy.money import format_usd


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: never overwrite a --config given before the subcommand
    parser.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="config file (default: $HERMES_PROXY_CONFIG, then the user config, then the demo config)")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "keys", help="create, list and revoke team API keys",
        description="Team API keys (hp-…). A key is printed once, when created; only its hash is stored.")
    add_config_argument(parser)
    commands = parser.add_subparsers(dest="keys_command", metavar="{create,list,revoke}", required=True)

    create = commands.add_parser("create", help="create a key for a team and print it (once)")
    create.add_argument("--team", required=True, help="a team configured under [teams]")
    create.add_argument("--name", help="a name to find the key by (default: its id)")
    create.add_argument("--limit-usd", dest="limit_usd", metavar="USD",
                        help="lifetime spend limit of this key (default: the team's key_limit_usd, if any)")
    create.add_argument("--format", choices=("text", "json"), default="text")
    add_config_argument(create)

    list_ = commands.add_parser("list", help="list keys (never their secret)")
    list_.add_argument("--team", help="only this team's keys")
    list_.add_argument("--format", choices=("table", "json"), default="table")
    add_config_argument(list_)

    revoke = commands.add_parser("revoke", help="revoke a key by id or name (it stops working at once)")
    revoke.add_argument("key", metavar="ID_OR_NAME")
    revoke.add_argument("--team", help="the key's team (needed when several teams use the name)")
    add_config_argument(revoke)

    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(getattr(args, "config", None))
    command = args.keys_command
    if getattr(args, "team", None) is not None:
        keyutil.check_team(config, args.team)
    if command == "create":
        keyutil.check_name(args.name)
        keyutil.parse_usd(args.limit_usd, "--limit-usd")  # checked before the ledger is opened: nothing is written
    return asyncio.run(_run(config, args))


async def _run(config: Config, args: argparse.Namespace) -> int:
    ledger = open_ledger(config.ledger)
    await ledger.start()
    try:
        if args.keys_command == "create":
            return await _create(config, ledger, args)
        if args.keys_command == "list":
            return _list(await ledger.list_keys(args.team), args.format)
        return await _revoke(ledger, args)
    finally:
        await ledger.close()


async def _create(config: Config, ledger: Ledger, args: argparse.Namespace) -> int:
    limit = keyutil.parse_usd(args.limit_usd, "--limit-usd")
    plaintext, record = await ledger.create_key(args.team, args.name, limit)
    if args.format == "json":
        print(json.dumps({**record.to_json(), "key": plaintext}, indent=2))
    else:
        print(plaintext)
        policy = config.team(record.team)
        team_limit = policy.key_limit_usd if policy is not None else None
        shown = limit if limit is not None else team_limit
        limit_text = "no spend limit" if shown is None else f"spend limit {format_usd(shown)}"
        print(f"created key {record.id} '{record.name}' for team '{record.team}' ({limit_text}); "
              "it is shown only now: store it", file=sys.stderr)
    if config.ledger.url.startswith("memory://"):
        print("warning: the ledger is in memory (ledger.url = memory://): this key is gone when this command ends",
              file=sys.stderr)
    return 0


def _list(records: Sequence[KeyRecord], fmt: str) -> int:
    if fmt == "json":
        print(json.dumps({"object": "list", "data": [r.to_json() for r in records]}, indent=2))
        return 0
    if not records:
        print("no keys")
        return 0
    header = ("ID", "TEAM", "NAME", "PREFIX", "LIMIT", "CREATED", "STATUS")
    rows = [
        (r.id, r.team, r.name, r.prefix + "…", "-" if r.limit_usd is None else format_usd(r.limit_usd),
         f"{r.created_at:%Y-%m-%d %H:%M}",
         "active" if r.revoked_at is None else f"revoked {r.revoked_at:%Y-%m-%d %H:%M}")
        for r in records
    ]
    print(render_table(header, rows))
    return 0


async def _revoke(ledger: Ledger, args: argparse.Namespace) -> int:
    record = await ledger.revoke_key(args.key, args.team)
    if record is None:
        where = f" in team '{args.team}'" if args.team else ""
        raise NotFound(f"no key with id or live name {args.key!r}{where} (see: hermes-proxy keys list)")
    print(f"revoked {record.id} '{record.name}' (team '{record.team}')")
    return 0


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(header), *(line(row) for row in rows)])
