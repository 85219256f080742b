"""The dashboard's only style sheet and script, vendored here (no network, no build step) and served from ``/ui/static``
under a name carrying their hash, so the CSP allows them as ``'self'`` and browsers may cache them for good."""

from __future__ import annotations

import hashlib

from aiohttp import web

CSS = """
:root { --ink: #1d2330; --muted: #5d6678; --line: #d9dee8; --bg: #f6f7fa; --card: #fff; --accent: #3559c7;
        --reserved: #9db1ea; --warn: #b7791f; --bad: #c53030; --ok: #2f855a; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       background: var(--bg); }
header { display: flex; align-items: center; gap: 18px; padding: 10px 24px; background: #17203a; color: #fff; }
header a { color: #dfe6ff; text-decoration: none; } header a:hover { text-decoration: underline; }
header .brand { font-weight: 700; letter-spacing: .02em; } header .who { margin-left: auto; color: #b8c2e0; }
header form { margin: 0; } header button { background: none; border: 1px solid #6d7aa8; color: #dfe6ff; }
main { max-width: 1120px; margin: 0 auto; padding: 18px 24px 48px; }
h1 { font-size: 22px; margin: 6px 0 14px; } h2 { font-size: 16px; margin: 0 0 10px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px;
          margin: 0 0 16px; }
.row { display: flex; gap: 16px; flex-wrap: wrap; } .row > section { flex: 1 1 320px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: middle; }
th { color: var(--muted); font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: 700; border-top: 2px solid var(--line); }
.muted { color: var(--muted); } .small { font-size: 12px; }
.tag { display: inline-block; font-size: 11px; padding: 0 6px; border-radius: 9px; border: 1px solid; }
.tag.est { color: var(--warn); } .tag.learned { color: var(--accent); } .tag.revoked { color: var(--bad); }
.tag.ok { color: var(--ok); } .tag.soft { color: var(--warn); } .tag.over { color: var(--bad); }
.stat { font-size: 24px; font-weight: 700; font-variant-numeric: tabular-nums; }
.stats { display: flex; gap: 28px; flex-wrap: wrap; } .stats div { min-width: 130px; }
.exports { font-size: 12px; margin-left: 8px; } .exports a { margin-left: 6px; }
nav.periods a { margin-right: 10px; } nav.periods a.current { font-weight: 700; color: var(--ink); }
a { color: var(--accent); }
input, select, button { font: inherit; padding: 5px 8px; border: 1px solid var(--line); border-radius: 5px; }
button { background: var(--accent); color: #fff; border-color: var(--accent); cursor: pointer; }
button.danger { background: #fff; color: var(--bad); border-color: var(--bad); }
form.inline { display: inline; } form.create { display: flex; gap: 8px; flex-wrap: wrap; align-items: end; }
form.create label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); }
.login { max-width: 420px; margin: 60px auto; } .login input { width: 100%; margin: 6px 0 12px; }
.notice { border-left: 4px solid var(--accent); } .error { border-left: 4px solid var(--bad); }
code.key { display: block; padding: 10px; background: #f0f3fb; border-radius: 5px; font-size: 14px;
           word-break: break-all; user-select: all; }
svg.chart { width: 100%; height: auto; display: block; }
svg.chart .bar { fill: var(--accent); } svg.chart .bar:hover { fill: #223f99; }
svg.chart .grid { stroke: var(--line); stroke-width: 1; } svg.chart .axis { fill: var(--muted); font-size: 11px; }
svg.gauge .track { fill: #edf0f6; } svg.gauge .spent { fill: var(--accent); } svg.gauge .reserved { fill: var(--reserved); }
svg.gauge.soft .spent { fill: var(--warn); } svg.gauge.over .spent { fill: var(--bad); }
svg.gauge .soft { stroke: var(--ink); stroke-width: 2; stroke-dasharray: 3 2; }
.live-dot { display: inline-block; width: 8px; height: 8px; border-radius: 50%; background: var(--muted);
            margin-right: 6px; } .live-dot.on { background: var(--ok); }
"""

JS = """
"use strict";
(function () {
  var body = document.body, url = body.getAttribute("data-live-url");
  if (!url) { return; }
  var dot = document.getElementById("live-dot"), timer = null;
  function show(data) {
    Object.keys(data).forEach(function (name) {
      document.querySelectorAll('[data-live="' + name + '"]').forEach(function (el) {
        el.textContent = String(data[name]);
      });
    });
    if (dot) { dot.classList.add("on"); dot.title = "updated " + new Date().toLocaleTimeString(); }
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" }, cache: "no-store" })
      .then(function (r) {
        if (r.status === 401 || r.status === 403) { clearInterval(timer); throw new Error("signed out"); }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(show)
      .catch(function () { if (dot) { dot.classList.remove("on"); } });
  }
  poll();
  timer = setInterval(poll, Number(body.getAttribute("data-live-every") || "5000"));
})();
"""

CSS_NAME = f"dashboard.{hashlib.sha256(CSS.encode()).hexdigest()[:12]}.css"
JS_NAME = f"live.{hashlib.sha256(JS.encode()).hexdigest()[:12]}.js"
_FILES = {CSS_NAME: (CSS, "text/css"), JS_NAME: (JS, "text/javascript")}


async def static_file(request: web.Request) -> web.Response:
    found = _FILES.get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound()
    text, kind = found
    return web.Response(text=text, content_type=kind, charset="utf-8",
                        headers={"Cache-Control": "public, max-age=31536000, immutable"})
