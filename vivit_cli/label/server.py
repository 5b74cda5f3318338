"""The local server of `vivit label`: the page, its JSON, the videos by their number. Safe by default, as Jupyter is:
a token in the printed URL that becomes a cookie, the Host header checked (DNS rebinding), and a CSRF token on every
request that changes anything. Routes parse, call the loop and answer: no decoding or model code here.

Starlette is imported by this module alone, from the `label` extra.
"""

from __future__ import annotations

import html
import json
import secrets
from dataclasses import dataclass
from importlib import resources
from string import Template
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from vivit_cli.errors import LabelError, VivitError
from vivit_cli.label import page
from vivit_cli.label.loop import Loop
from vivit_cli.label.preview import Media

TOKEN = "token"  # the query parameter of the printed URL, and the scheme of an Authorization header
CSRF_HEADER = "x-vivit-csrf"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
ANY_HOST = ("0.0.0.0", "::", "")  # bound to every address: the Host header cannot be checked
NO_STORE = {"Cache-Control": "no-store"}
ACTIONS = ("answer", "skip", "undo", "labels")  # what POST /api/ACTION does


@dataclass(frozen=True)
class Guard:
    """Who may ask: the token and the CSRF token of this run, the hosts the page may be reached by."""

    token: str
    csrf: str
    hosts: tuple[str, ...]  # names a Host header may give; empty: any (bound to every address)
    cookie: str  # the cookie's name: one per port, since browsers share cookies between a host's ports

    @classmethod
    def new(cls, host: str, port: int) -> Guard:
        hosts = () if host in ANY_HOST else tuple(dict.fromkeys((*LOCAL_HOSTS, host.strip("[]"))))
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24), hosts, f"vivit-label-{port}")

    def url(self, host: str, port: int) -> str:
        shown = "127.0.0.1" if host in ANY_HOST else (f"[{host}]" if ":" in host else host)
        return f"http://{shown}:{port}/?{urlencode({TOKEN: self.token})}"

    def refusal(self, request: Request) -> Response | None:
        """Why this request may not be answered, as the response that says so; None when it may."""
        host = request.headers.get("host", "")
        name = host[1 : host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
        if self.hosts and name not in self.hosts:
            return PlainTextResponse(f"refused: this server answers to {', '.join(self.hosts)} only", 403)
        given = request.query_params.get(TOKEN)
        header = request.headers.get("authorization", "")
        known = request.cookies.get(self.cookie) or header.removeprefix(f"{TOKEN} ").strip()
        if not secrets.compare_digest(given or known or "", self.token):
            return PlainTextResponse("refused: open the URL that `vivit label` printed (it carries the token)", 403)
        if request.method not in ("GET", "HEAD") and not (
            secrets.compare_digest(request.headers.get(CSRF_HEADER, ""), self.csrf)
            and request.headers.get("sec-fetch-site", "same-origin") == "same-origin"
        ):
            return PlainTextResponse("refused: changes are made from the page only", 403)
        return None


class Guarded:
    """ASGI middleware: every request through the guard; the token in a URL becomes a cookie and leaves the URL."""

    def __init__(self, app: Any, guard: Guard) -> None:
        self.app, self.guard = app, guard

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            refusal = self.guard.refusal(request)
            if refusal is None and TOKEN in request.query_params:
                query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != TOKEN])
                refusal = RedirectResponse(request.url.path + (f"?{query}" if query else ""), 303)
                refusal.set_cookie(self.guard.cookie, self.guard.token, httponly=True, samesite="strict")
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def make_app(loop: Loop, media: Media, guard: Guard) -> Any:
    """The page and its JSON over `loop`, guarded."""
    static = resources.files("vivit_cli.label") / "static"
    html_page = Template((static / "page.html").read_text(encoding="utf-8"))

    def number(request: Request, value: Any = None) -> int:
        i = request.path_params["i"] if value is None else value
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(loop.project.videos):
            raise Refused(404, f"no video {i!r} in this project")
        return i

    async def home(request: Request) -> Response:
        first = loop.upcoming(None, 1)
        return RedirectResponse(f"/v/{first[0] if first else 0}", 303)

    async def show(request: Request) -> Response:
        i = number(request)
        text = html_page.substitute(csrf=guard.csrf, index=i, title=html.escape(loop.project.folder.name))
        return HTMLResponse(text, headers=NO_STORE)

    async def status(request: Request) -> Response:
        current = request.query_params.get("current")
        i = number(request, int(current)) if current and current.isdigit() else None
        return JSONResponse(page.status(loop, i), headers=NO_STORE)

    async def video(request: Request) -> Response:
        return JSONResponse(await described(number(request)), headers=NO_STORE)

    async def described(i: int) -> dict[str, Any]:
        """/api/video/N: the video as the loop sees it, and what the browser plays of it."""
        view = page.video(loop, i)
        view["media"] = f"/media/{i}" if await run_in_threadpool(media.plays, i) else f"/preview/{i}"
        view["preview"] = f"/preview/{i}"
        media.prefetch([n for n in (view["next"],) if n is not None])
        return view

    async def change(request: Request) -> Response:
        """POST /api/answer {video, label}, /api/skip {video}, /api/undo {}, /api/labels {label}."""
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise Refused(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise Refused(400, "the body is not a JSON object")
        action = request.path_params["action"]
        if action not in ACTIONS:
            raise Refused(404, f"no action {action!r}: {', '.join(ACTIONS)}")
        label = body.get("label")
        if action in ("answer", "labels") and not isinstance(label, str):
            raise Refused(400, "give a label")
        try:
            if action == "answer":
                shown = await run_in_threadpool(loop.answer, number(request, body.get("video")), label)
            elif action == "skip":
                shown = await run_in_threadpool(loop.skip, number(request, body.get("video")))
            elif action == "undo":
                shown = await run_in_threadpool(loop.undo)
            else:
                await run_in_threadpool(loop.add_label, label)
                shown = None
        except LabelError as e:
            raise Refused(400, str(e)) from None
        except VivitError as e:
            raise Refused(500, str(e)) from None
        # The video to show next, and the status beside it: the page draws them without asking again.
        answer: dict[str, Any] = {"saved": True, "show": shown}
        if shown is not None:
            answer.update(video=await described(shown), status=page.status(loop, shown))
        return JSONResponse(answer, headers=NO_STORE)

    async def looked(request: Request) -> Response:
        """/api/looked/N: where the model looked, asked for after the video is on screen (it probes the file)."""
        found = await run_in_threadpool(media.looked, number(request))
        body = None if found is None else {"clips": found.clips, "duration_s": found.duration_s}
        return JSONResponse(body, headers=NO_STORE)

    async def original(request: Request) -> Response:
        return FileResponse(loop.project.videos[number(request)])

    async def preview(request: Request) -> Response:
        return FileResponse(await made(media.preview, number(request)), media_type="video/webm")

    async def thumb(request: Request) -> Response:
        return FileResponse(await made(media.thumb, number(request)), media_type="image/jpeg")

    async def made(make: Any, i: int) -> Any:
        try:
            return await run_in_threadpool(make, i)
        except VivitError as e:
            raise Refused(422, str(e)) from None

    routes = [
        Route("/", home),
        Route("/v/{i:int}", show),
        Route("/api/status", status),
        Route("/api/video/{i:int}", video),
        Route("/api/looked/{i:int}", looked),
        Route("/api/{action:str}", change, methods=["POST"]),
        Route("/media/{i:int}", original),
        Route("/preview/{i:int}", preview),
        Route("/thumb/{i:int}", thumb),
        Mount("/static", StaticFiles(directory=str(static))),
    ]

    app = Starlette(routes=routes, exception_handlers={Refused: _refused})
    return Guarded(app, guard)


class Refused(Exception):
    """A request that cannot be answered: a status and a message, answered as JSON; nothing is written."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _refused(request: Request, e: Exception) -> Response:
    assert isinstance(e, Refused)
    return JSONResponse({"error": str(e)}, status_code=e.status)
