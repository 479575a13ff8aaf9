"""The dashboard's web app (aiohttp): the page and its assets (package data, nothing fetched at
run time), the JSON endpoints, and ``/events``, a stream of server-sent events carrying a JSON
snapshot after each sample (one every ``interval``, 0.5 s by default: the page is at most ~1 s
behind).

One task samples Redis (``state.Observer``, in a thread of its own: redis-py blocks) and wakes
every open stream; a stream opened with ``?job=NAME`` also carries that job's page (its series,
dead letters, held tasks). Redis down is a state of the snapshot ("Redis unreachable"), never an
error of the server.

Operator actions (``--actions``; off by default, and then every action answers 403): ``POST
/api/jobs/NAME/cancel|requeue|delete`` with the JSON body ``{"confirm": NAME, "epoch": E}``
(``epoch``: the incarnation the page showed, checked by the Function that acts); a request
from another origin (its ``Origin`` header) or not JSON is refused, so a page elsewhere cannot
act through a browser that holds the token's cookie (SameSite=Strict as well).

Security: every response is JSON or a static file, and every JSON text has ``<``, ``>`` and ``&``
escaped (``\\u003c``...), so no job name, path, word or reason is ever markup; the page inserts
them with textContent only, and its Content-Security-Policy allows no inline script. With a token,
a request must carry it (``?token=`` once, which sets an HttpOnly cookie; or ``Authorization:
Bearer``), else 401; without one (loopback only), a request must name a loopback Host (no DNS
rebinding). No credential of Redis is in any response.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import hmac
import json
import logging
import signal
from importlib import resources
from typing import Any

from aiohttp import web

from ..connection import Connection
from ..exceptions import UsageError
from ..settings import Settings, check_job_name
from . import actions
from .state import Observer, read_detail, redis_address

log = logging.getLogger(__name__)

COOKIE = "wordcount_dashboard_token"
KEEPALIVE_S = 15.0  # an SSE comment this often when nothing changed (proxies close idle streams)
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STATIC = {"app.js": "text/javascript", "style.css": "text/css", "index.html": "text/html"}

DASH: web.AppKey[Dashboard] = web.AppKey("dashboard")


def dumps(doc: Any) -> str:
    """JSON with <, > and & escaped: valid JSON, never markup whatever it holds."""
    return (json.dumps(doc, separators=(",", ":")).replace("<", "\\u003c")
            .replace(">", "\\u003e").replace("&", "\\u0026"))


def json_response(doc: Any, status: int = 200) -> web.Response:
    return web.Response(text=dumps(doc), status=status, content_type="application/json")


class Dashboard:
    """The sampler and what the streams wait on: ``version`` grows with every sample."""

    def __init__(self, observer: Observer, interval: float, actions: bool = False) -> None:
        self.observer = observer
        self.interval = interval
        self.actions = actions  # operator actions enabled (--actions)
        self.watched: collections.Counter[str] = collections.Counter()
        self.version = 0
        self.changed = asyncio.Condition()
        # one thread: the Observer and its connection are used by one thread at a time
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dashboard")

    async def in_thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def sample_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.in_thread(self.observer.sample, [j for j, n in self.watched.items()
                                                            if n > 0])
            except Exception:  # noqa: BLE001 - a bug in a sample must not stop the dashboard
                log.exception("sample failed")
            async with self.changed:
                self.version += 1
                self.changed.notify_all()
            await asyncio.sleep(max(0.0, self.interval - (loop.time() - started)))

    def payload(self, job: str | None) -> dict[str, Any]:
        doc = self.observer.snapshot()
        doc["version"] = self.version
        doc["actions"] = self.actions
        if job:
            doc["job"] = self.observer.job(job)
        return doc


# -- middleware: headers, token, Host ---------------------------------------------------------

def make_guard(token: str | None):
    @web.middleware
    async def guard(request: web.Request, handler):
        if token is None:
            if _host_name(request.host or "") not in LOOPBACK_HOSTS:
                return web.Response(status=403, text="this dashboard answers only to a loopback "
                                    "Host (127.0.0.1, localhost)", headers=HEADERS)
            set_cookie = False
        else:
            given, set_cookie = _token_of(request)
            if given is None or not hmac.compare_digest(given.encode(), token.encode()):
                return web.Response(status=401, headers={**HEADERS, "WWW-Authenticate": "Bearer"},
                                    text="a token is required: open the page once as "
                                         "/?token=TOKEN, or send Authorization: Bearer TOKEN")
        resp = await handler(request)
        if not resp.prepared:
            resp.headers.update(HEADERS)
        if set_cookie:
            resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
        return resp
    return guard


def _host_name(host: str) -> str:
    """The Host header without its port: ``[::1]:8077`` -> ``[::1]``."""
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0]


def _token_of(request: web.Request) -> tuple[str | None, bool]:
    """The token a request carries, and whether it came in the query (then set the cookie)."""
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth[len("Bearer "):].strip(), False
    if "token" in request.query:
        return request.query["token"], True
    return request.cookies.get(COOKIE), False


# -- handlers -----------------------------------------------------------------------------------

def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


async def index(request: web.Request) -> web.Response:
    return web.Response(body=_asset("index.html"), content_type="text/html", charset="utf-8")


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound(text="no such asset")
    return web.Response(body=_asset(name), content_type=STATIC[name], charset="utf-8")


async def favicon(request: web.Request) -> web.Response:
    return web.Response(status=204)  # none: a browser asks for one on every page


async def api_jobs(request: web.Request) -> web.Response:
    snap = request.app[DASH].observer.snapshot()
    return json_response({"sampled_ms": snap["sampled_ms"], "redis": snap["redis"],
                          "jobs": snap["jobs"], "actions": request.app[DASH].actions})


def _job_name(request: web.Request, text: str) -> str:
    try:
        return check_job_name(text)
    except UsageError as e:
        raise web.HTTPBadRequest(text=dumps({"error": str(e)}),
                                 content_type="application/json") from None


async def api_job(request: web.Request) -> web.Response:
    dash = request.app[DASH]
    name = _job_name(request, request.match_info["name"])
    obs = dash.observer
    detail = None
    if obs.redis.get("reachable") and name in obs.jobs:
        try:
            detail = await dash.in_thread(read_detail, obs.conn, name,
                                          list(obs.workers.values()))
        except Exception as e:  # noqa: BLE001 - Redis went away meanwhile: the row without it
            detail = {"error": f"{type(e).__name__}: {e}"}
    doc = obs.job(name, detail)
    if doc is None:
        return json_response({"error": f"no job {name!r} seen by this dashboard"}, 404)
    return json_response(doc)


async def api_workers(request: web.Request) -> web.Response:
    snap = request.app[DASH].observer.snapshot()
    return json_response({"sampled_ms": snap["sampled_ms"], "workers": snap["workers"]})


async def api_redis(request: web.Request) -> web.Response:
    snap = request.app[DASH].observer.snapshot()
    return json_response({"sampled_ms": snap["sampled_ms"], **snap["redis"]})


async def api_action(request: web.Request) -> web.Response:
    """An operator's action on one job (see the module's docstring); every outcome is in the
    event feed, and only a confirmed request of this origin acts."""
    dash = request.app[DASH]
    name = _job_name(request, request.match_info["name"])
    action = request.match_info["action"]
    if not dash.actions:
        return json_response({"error": "operator actions are off: start the dashboard with "
                                       "--actions (as a Redis user that may write)"}, 403)
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        return json_response({"error": f"a request from {origin} is refused"}, 403)
    if request.content_type != "application/json":
        return json_response({"error": "send the action as JSON"}, 415)
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get("confirm") != name \
            or not isinstance(body.get("epoch"), str) or not body["epoch"]:
        return json_response({"error": f"not confirmed: {action} of job {name} needs the body "
                                       f'{{"confirm": "{name}", "epoch": ...}}; nothing was '
                                       "done"}, 400)
    obs = dash.observer

    def act() -> str:
        try:
            text = actions.run(obs.conn, action, name, body["epoch"])
        except actions.ActionError as e:
            obs.operator(f"operator (dashboard): {action} of job {name} refused: {e}", name)
            raise
        obs.operator(f"operator (dashboard): {text}", name)
        return text
    try:
        text = await dash.in_thread(act)
    except actions.ActionError as e:
        return json_response({"error": str(e)}, e.status)
    except Exception as e:  # noqa: BLE001 - Redis unreachable: say so, nothing was done here
        return json_response({"error": f"{type(e).__name__}: {e}"}, 503)
    return json_response({"ok": True, "message": text})


async def api_events(request: web.Request) -> web.Response:
    snap = request.app[DASH].observer.snapshot()
    return json_response({"events": snap["events"]})


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one ``data:`` line of JSON per sample, at most one per interval."""
    dash = request.app[DASH]
    job = _job_name(request, request.query["job"]) if request.query.get("job") else None
    resp = web.StreamResponse(headers={**HEADERS, "Content-Type": "text/event-stream",
                                       "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    if job:
        dash.watched[job] += 1
        await dash.in_thread(dash.observer.refresh_detail, job)  # the first frame has it
    seen = -1
    try:
        await resp.write(b"retry: 1000\n\n")
        while True:
            async with dash.changed:
                try:
                    await asyncio.wait_for(dash.changed.wait_for(lambda s=seen: dash.version != s),
                                           KEEPALIVE_S)
                except TimeoutError:
                    await resp.write(b": keepalive\n\n")
                    continue
                seen = dash.version
            await resp.write(f"id: {seen}\ndata: {dumps(dash.payload(job))}\n\n".encode())
    except (ConnectionResetError, ConnectionError):
        pass  # the page went away
    finally:
        if job:
            dash.watched[job] -= 1
            if dash.watched[job] <= 0:
                del dash.watched[job]
    return resp


# -- the app and its server ---------------------------------------------------------------------

def make_app(settings: Settings, token: str | None, interval: float = 0.5,
             actions: bool = False) -> web.Application:
    app = web.Application(middlewares=[make_guard(token)])
    conn = Connection(settings, name="wordcount-dashboard")
    app[DASH] = Dashboard(Observer(conn), interval, actions)

    async def sampler(app: web.Application):
        task = asyncio.create_task(app[DASH].sample_forever())
        yield
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        app[DASH].pool.shutdown(wait=False, cancel_futures=True)
        conn.close()

    app.cleanup_ctx.append(sampler)
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/events", events)
    app.router.add_get("/api/jobs", api_jobs)
    app.router.add_get("/api/jobs/{name}", api_job)
    app.router.add_get("/api/workers", api_workers)
    app.router.add_get("/api/redis", api_redis)
    app.router.add_get("/api/events", api_events)
    app.router.add_post("/api/jobs/{name}/{action}", api_action)
    return app


async def _serve(settings: Settings, host: str, port: int, token: str | None,
                 interval: float, actions: bool = False) -> None:
    runner = web.AppRunner(make_app(settings, token, interval, actions), handle_signals=False,
                           access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as e:
        await runner.cleanup()
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e} (another "
                         "dashboard? choose a port with --port)") from None
    bound = runner.addresses[0][1] if runner.addresses else port
    shown = f"[{host}]" if ":" in host else host
    print(f"wordcount dashboard: http://{shown}:{bound}/ (Redis {redis_address(settings)}"
          + ("; token required: open it once as /?token=TOKEN" if token else "") + "; Ctrl-C "
          "stops)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(s, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def serve(settings: Settings, host: str, port: int, token: str | None,
          interval: float = 0.5, actions: bool = False) -> int:
    asyncio.run(_serve(settings, host, port, token, interval, actions))
    return 0
