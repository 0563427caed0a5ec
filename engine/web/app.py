"""The web view's application: routes, the GET/HEAD-only rule, hosts, headers, errors.

    app = create_app(Store.open_read_only("evocade.db"), WebSettings(cache_dir=...))

Safety, layer by layer: the store is opened read-only (the database connection refuses
writes); every method but GET and HEAD gets 405 before any route runs; the Host header must be
a loopback name unless the site was started with --allow-remote (so a web page elsewhere
cannot reach it through DNS rebinding); templates autoescape everything; pages carry a
Content-Security-Policy that allows no script at all (none is needed).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from engine.audit import Unreplayable
from engine.errors import UserError
from engine.web import views
from engine.web.replays import ReplayCache, ReplayCacheSettings
from sandbox.replay import ReplayError
from storage import StorageError, Store

TEMPLATES = Path(__file__).parent / "templates"
ALLOWED_METHODS = ("GET", "HEAD")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src 'self'; style-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_App = Callable[[_Scope, _Receive, _Send], Awaitable[None]]


@dataclass(frozen=True)
class WebSettings:
    cache_dir: Path
    allow_remote: bool = False
    replay_max_frames: int = 600


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "evocade" / "replays"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, allow_remote: bool) -> str:
    """A warning to print for a non-loopback bind that was allowed; UserError if not allowed."""
    if is_loopback(host):
        return ""
    if not allow_remote:
        raise UserError(
            f"refusing to bind {host}: the site has no login and shows every program and "
            "prompt; use 127.0.0.1, or pass --allow-remote if you mean it"
        )
    return (
        f"serving on {host}: anyone who can reach this address can read the whole database "
        "(no login, no TLS)"
    )


class ReadOnlyMethods:
    """ASGI middleware: GET and HEAD pass; anything else is 405 before any route runs."""

    def __init__(self, app: _App) -> None:
        self.app = app

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] == "http" and scope["method"] not in ALLOWED_METHODS:
            response = PlainTextResponse(
                "405: this site is read-only; it answers GET and HEAD only",
                status_code=405,
                headers={"Allow": ", ".join(ALLOWED_METHODS)},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """ASGI middleware adding the headers every response carries."""

    HEADERS = (
        (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
    )

    def __init__(self, app: _App) -> None:
        self.app = app

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        async def with_headers(message: _Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


class _Pages:
    """The site's handlers over one store: each renders a template or serves a file."""

    def __init__(self, store: Store, settings: WebSettings) -> None:
        self.store = store
        self.templates = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.replays = ReplayCache(
            store,
            ReplayCacheSettings(settings.cache_dir, max_frames=settings.replay_max_frames),
        )

    def routes(self) -> list[Route]:
        return [
            Route("/", self.runs, methods=["GET"]),
            Route("/run/{run_id:str}", self.run, methods=["GET"]),
            Route("/program/{program_id:str}", self.program, methods=["GET"]),
            Route(
                "/evaluation/{evaluation_id:str}/episode/{episode:int}",
                self.episode,
                methods=["GET"],
            ),
            Route(
                "/replay/{evaluation_id:str}/{episode:int}.gif", self.replay_gif, methods=["GET"]
            ),
            Route("/static/style.css", self.stylesheet, methods=["GET"]),
            Route("/static/icon.svg", self.icon, methods=["GET"]),
            Route("/favicon.ico", self.icon, methods=["GET"]),
        ]

    def exception_handlers(self) -> dict[Any, Callable[[Request, Exception], Response]]:
        from storage import AmbiguousIdError, NotFoundError

        return {
            NotFoundError: self.not_found,
            AmbiguousIdError: self.not_found,
            StorageError: self.storage_error,
            HTTPException: self.http_error,
        }

    def page(self, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
        html = self.templates.get_template(name).render(location=self.store.location, **context)
        return HTMLResponse(html, status_code=status_code)

    def runs(self, request: Request) -> Response:
        return self.page("runs.html", views.runs_page(self.store))

    def run(self, request: Request) -> Response:
        return self.page("run.html", views.run_page(self.store, request.path_params["run_id"]))

    def program(self, request: Request) -> Response:
        context = views.program_page(
            self.store, request.path_params["program_id"], request.query_params.get("replay")
        )
        return self.page("program.html", context)

    def episode(self, request: Request) -> Response:
        context = views.episode_page(
            self.store, request.path_params["evaluation_id"], request.path_params["episode"]
        )
        return self.page("episode.html", context)

    def replay_gif(self, request: Request) -> Response:
        evaluation = self.store.resolve_evaluation(request.path_params["evaluation_id"])
        try:
            path = self.replays.gif(evaluation.id, request.path_params["episode"])
        except (Unreplayable, ReplayError) as error:
            return PlainTextResponse(f"cannot replay this episode: {error}", status_code=409)
        return FileResponse(
            path, media_type="image/gif", headers={"Cache-Control": "max-age=86400"}
        )

    def stylesheet(self, request: Request) -> Response:
        return FileResponse(TEMPLATES / "style.css", media_type="text/css")

    def icon(self, request: Request) -> Response:
        return FileResponse(TEMPLATES / "icon.svg", media_type="image/svg+xml")

    def not_found(self, request: Request, exc: Exception) -> Response:
        return self.page("error.html", {"status": 404, "message": str(exc)}, status_code=404)

    def storage_error(self, request: Request, exc: Exception) -> Response:
        return self.page("error.html", {"status": 500, "message": str(exc)}, status_code=500)

    def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return self.page(
            "error.html", {"status": exc.status_code, "message": exc.detail}, exc.status_code
        )


def create_app(store: Store, settings: WebSettings) -> Starlette:
    """The site over `store` (which should be opened with `Store.open_read_only`)."""
    pages = _Pages(store, settings)
    hosts = ["*"] if settings.allow_remote else [name.strip("[]") for name in LOOPBACK_NAMES]
    return Starlette(
        routes=pages.routes(),
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(ReadOnlyMethods),
            Middleware(TrustedHostMiddleware, allowed_hosts=hosts),
        ],
        exception_handlers=pages.exception_handlers(),
    )
