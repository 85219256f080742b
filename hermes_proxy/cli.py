"""``hermes-proxy``: serve, check-config, chat, keys, spend, cost, tokens, size."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib import metadata

from hermes_proxy.commands.check import describe, warnings_for
from hermes_proxy.errors import HermesError

__all__ = ["build_parser", "describe", "main", "package_version", "warnings_for"]


def package_version() -> str:
    """The installed distribution's version, else the package's ``__version__``, else ``unknown``."""
    try:
        return metadata.version("hermes-proxy")
    except metadata.PackageNotFoundError:
        import hermes_proxy

        return str(getattr(hermes_proxy, "__version__", "unknown"))


def build_parser() -> argparse.ArgumentParser:
    from hermes_proxy.commands import check, cost, keys, serve, size, spend, tokens
    from tui import command as chat

    parser = argparse.ArgumentParser(prog="hermes-proxy", description="hermes-proxy: an OpenAI-compatible proxy and "
                                     "terminal chat for Hermes 4, with reasoning control, live cost and team budgets.")
    parser.add_argument("--version", action="version", version=f"hermes-proxy {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve.add_parser(sub)
    check.add_parser(sub)
    for module in (chat, keys, spend, cost, tokens, size):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except HermesError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
