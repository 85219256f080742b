"""Small HTML builders: the page layout, tables, links. Every value passes through :func:`esc`; no inline script or
style (the CSP forbids both)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from urllib.parse import urlencode

from aiohttp import web

from hermes_proxy.dashboard.session import Session
from hermes_proxy.dashboard.static import CSS_NAME, JS_NAME


def esc(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def url(path: str, **params: str | None) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{path}?{query}" if query else path


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: Iterable[int] = (),
          table_id: str | None = None, total: Sequence[str] | None = None) -> str:
    """Cells are HTML already (escape values with :func:`esc`)."""
    right = set(numeric)

    num = ' class="num"'

    def cells(tag: str, row: Sequence[str]) -> str:
        return "".join(f"<{tag}{num if i in right else ''}>{cell}</{tag}>" for i, cell in enumerate(row))

    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    if total is not None:
        body += f'<tr class="total">{cells("td", total)}</tr>'
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return f"<table{ident}><thead><tr>{cells('th', headers)}</tr></thead><tbody>{body}</tbody></table>"


def csrf_field(token: str) -> str:
    return f'<input type="hidden" name="csrf" value="{esc(token)}">'


def page(title: str, content: str, *, session: Session | None = None, csrf: str = "", live_url: str | None = None,
         status: int = 200) -> web.Response:
    nav = ""
    if session is not None:
        who = "admin" if session.admin else f"team {session.team}"
        links = ['<a href="/ui">Overview</a>' if session.admin else
                 f'<a href="{esc(url("/ui/team", team=session.team))}">{esc(session.team)}</a>',
                 '<a href="/ui/keys">Keys</a>']
        nav = (" ".join(links) + f'<span class="who">signed in as {esc(who)}</span>'
               f'<form method="post" action="/ui/logout">{csrf_field(csrf)}<button type="submit">Sign out</button>'
               "</form>")
    live = f' data-live-url="{esc(live_url)}"' if live_url else ""
    script = f'<script src="/ui/static/{JS_NAME}" defer></script>' if live_url else ""
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · hermes-proxy</title>"
        f'<link rel="stylesheet" href="/ui/static/{CSS_NAME}">{script}</head>'
        f'<body{live}><header><span class="brand">hermes-proxy · spend</span>{nav}</header>'
        f"<main>{content}</main></body></html>"
    )
    return web.Response(text=text, content_type="text/html", charset="utf-8", status=status)


def message_page(title: str, text: str, status: int, session: Session | None = None, csrf: str = "") -> web.Response:
    return page(title, f'<section class="error"><h1>{esc(title)}</h1><p>{esc(text)}</p>'
                       '<p><a href="/ui">Back to the dashboard</a></p></section>',
                session=session, csrf=csrf, status=status)
