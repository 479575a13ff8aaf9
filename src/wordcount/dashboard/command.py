"""``wordcount dashboard``: its flags, the checks on them (a listening address beyond loopback
needs a token, or ``--published`` in a container: exit 2), and the handler that starts the web
app. Importing this module is cheap
(the CLI builds every parser at start): aiohttp and redis are imported by the handler only.

``cli.py`` hands in its ``add_redis_args`` and ``settings_from`` (one definition of --redis-url
and of the Redis settings for every operator command) rather than this module importing the CLI.
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import os
import urllib.parse
from collections.abc import Callable
from typing import Any

from .. import argtypes
from ..exceptions import UsageError

DEFAULT_PORT = 8077
TOKEN_ENV = "WORDCOUNT_DASHBOARD_TOKEN"
MIN_TOKEN = 16  # characters: a token shorter than this is refused (exit 2)
RETRY_S = 0.0  # a Redis call is tried once per sample: an outage shows at once, not after 120 s


def add_parser(sub, add_redis_args: Callable[..., None], settings_from: Callable[..., Any]
               ) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "dashboard",
        help="a live web page of the jobs, workers and Redis (read-only unless --actions)",
        description="Serve a web page that follows the jobs, the workers and Redis live (server-"
                    "sent events, at most 1 s behind), with an event feed of what it saw. It only "
                    "reads Redis (unless --actions). It listens on 127.0.0.1 unless --host says "
                    f"otherwise; any other address needs a token (--token or {TOKEN_ENV}), "
                    "which every request must then carry (?token= once, then a cookie; or "
                    "Authorization: Bearer).")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; a non-loopback one needs a "
                        "token)")
    p.add_argument("--port", type=argtypes.int_in(0, 65535), default=DEFAULT_PORT,
                   help=f"TCP port (default {DEFAULT_PORT}; 0: any free port, printed)")
    p.add_argument("--token", help=f"the secret every request must carry (env {TOKEN_ENV}, "
                                   "which keeps it out of `ps`); at least "
                                   f"{MIN_TOKEN} characters")
    p.add_argument("--published", metavar="URL",
                   help="in a container: its port is published on the host's loopback only, "
                        "and URL (http://127.0.0.1:PORT/) is where the host's browser opens "
                        "it. A --host beyond loopback then needs no token: only the host's own "
                        "processes (and the containers of this network) reach the listener, as "
                        "they would a dashboard on 127.0.0.1, and the Host check still refuses "
                        "any Host but a loopback one. URL must name a loopback address; the "
                        "compose clusters pass it")
    p.add_argument("--actions", action="store_true",
                   help="offer the operator's actions on a job's page: cancel, requeue dead "
                        "letters, delete a finished job (each asked for confirmation, and in "
                        "the event feed); its Redis user must then be one that may run the "
                        "Functions (the compose clusters' dashboard user is read-only)")
    p.add_argument("--interval", type=argtypes.float_in(0.1, 10), default=0.5, metavar="S",
                   help="seconds between two samples of Redis (default 0.5)")
    add_redis_args(p, planning=False)
    p.set_defaults(handler=functools.partial(cmd_dashboard, settings_from=settings_from))
    return p


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost: it may resolve beyond loopback
        return False


def check_published(url: str) -> str:
    """``--published``: the URL, normalized (``http://HOST:PORT/``), if it names a loopback
    address of the host; else UsageError."""
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as e:
        raise UsageError(f"--published {url!r}: not a URL ({e})") from None
    if parts.scheme != "http" or not host or port is None or parts.path not in ("", "/") \
            or parts.query or parts.username or parts.password:
        raise UsageError(f"--published {url!r}: expected http://127.0.0.1:PORT/ (the host's "
                         "loopback address and port that the container's port is published on)")
    if not is_loopback(host):
        raise UsageError(f"--published {url!r}: {host} is not a loopback address; a port "
                         f"published beyond loopback needs a token ({TOKEN_ENV} or --token)")
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def check_listen(host: str, token: str | None, published: str | None = None) -> str | None:
    """The token to require (None: none), or UsageError: a non-loopback address without one
    (unless ``published``: see --published), or a token too short to be a secret."""
    if token is not None and len(token) < MIN_TOKEN:
        raise UsageError(f"the dashboard token must be at least {MIN_TOKEN} characters (got "
                         f"{len(token)}); e.g. `python3 -c 'import secrets; "
                         "print(secrets.token_urlsafe(24))'`")
    if published is not None:
        check_published(published)
    if not is_loopback(host) and not token and published is None:
        raise UsageError(f"refusing to listen on {host}, beyond loopback, without a token: "
                         f"set {TOKEN_ENV} (or --token) to a secret of at least {MIN_TOKEN} "
                         "characters, or listen on 127.0.0.1 (the default)")
    return token or None


def cmd_dashboard(args: argparse.Namespace, settings_from: Callable[..., Any]) -> int:
    import dataclasses
    import logging

    from ..runtime import setup_logging

    token = check_listen(args.host, args.token if args.token is not None
                         else (os.environ.get(TOKEN_ENV) or None), args.published)
    setup_logging(args.verbose, logging.INFO)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    settings = dataclasses.replace(settings_from(args), retry_seconds=RETRY_S)
    try:
        from . import app
    except ImportError as e:  # aiohttp is an extra
        raise UsageError(f"the dashboard needs aiohttp ({e}): pip install "
                         "'wordcount[dashboard]'") from None
    if args.published is not None:  # the address the host's browser opens, not the bind
        print(f"wordcount dashboard: open {check_published(args.published)}"
              + ("?token=TOKEN (the token the dashboard was started with)" if token else "")
              + " on the host (published on its loopback only)", flush=True)
    return app.serve(settings, args.host, args.port, token, args.interval, args.actions)
