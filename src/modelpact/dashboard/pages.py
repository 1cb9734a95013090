"""The dashboard's routes, under ``/dashboard`` on the gateway: server-rendered pages (Jinja2),
htmx for the parts that refresh, uPlot for the charts — all served from the package, no CDN.

Owner: overview, every partner, models, incidents, the access review (suspend and revoke,
each with a reason, each an audit entry).  A partner: its own page only; any other partner's
answers 404, exactly as a partner that does not exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, FastAPI, Form, Header, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from modelpact.audit.entries import AuditEntry, SessionEntry
from modelpact.dashboard.access import LINK_MINUTES, BrowserSession, Doorman, Viewer, make_link
from modelpact.errors import (
    Denied,
    Expired,
    InvalidInput,
    ModelpactError,
    NotFound,
    Unauthenticated,
)
from modelpact.services.activity import Activity
from modelpact.services.partners import PartnerDirectory
from modelpact.services.sessions import SessionDesk
from modelpact.services.workspace import Workspace

__all__ = ["COOKIE", "install_dashboard"]

COOKIE = "modelpact_dashboard"
_HERE = Path(__file__).parent
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a sign-in link in the address never leaks onwards
    "Cache-Control": "no-store",
}
_STATUS = (
    (Unauthenticated, 401),
    (Denied, 403),
    (Expired, 403),
    (NotFound, 404),
    (InvalidInput, 400),
)


def _status(error: ModelpactError) -> int:
    return next((code for cls, code in _STATUS if isinstance(error, cls)), 503)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda t: "—" if t is None else t.strftime("%Y-%m-%d %H:%M:%S UTC")
    env.filters["day"] = lambda t: "—" if t is None else t.strftime("%Y-%m-%d")
    return env


def install_dashboard(
    app: FastAPI,
    workspace: Workspace,
    *,
    sessions: SessionDesk,
    audit: Callable[[AuditEntry], Awaitable[Any]],
    expiring_days: int | None = None,
) -> None:
    """Mount the dashboard on the gateway's app; ``audit`` makes an entry durable (a
    partner's sign-in link is one); charters ending within ``expiring_days`` (default: the
    expiry sweep's widest warning) are flagged as expiring."""
    env = _environment()
    doorman = Doorman(workspace.owner_verify_key)
    activity = Activity(workspace, expiring_days=expiring_days)
    router = APIRouter(prefix="/dashboard", include_in_schema=False)

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=_HEADERS)

    def refused(error: ModelpactError) -> HTMLResponse:
        return page("message.html", _status(error), title="Not available",
                    message=error.diagnostics(), viewer=None)  # fmt: skip

    def who(request: Request) -> BrowserSession:
        return doorman.session(request.cookies.get(COOKIE))

    def owner(session: BrowserSession) -> None:
        if session.viewer.role != "owner":
            raise NotFound("no such page")  # what a partner may not see does not exist

    async def read(fn: Any, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args)

    @router.get("/signin")
    async def sign_in(link: Annotated[str, Query(max_length=2000)]) -> Response:
        try:
            cookie, session = doorman.admit(link)
        except ModelpactError as error:
            return refused(error)
        viewer = session.viewer
        target = "/dashboard" if viewer.role == "owner" else f"/dashboard/partners/{viewer.partner}"
        response = RedirectResponse(target, status_code=303, headers=_HEADERS)
        response.set_cookie(COOKIE, cookie, max_age=8 * 3600, path="/dashboard", secure=True,
                            httponly=True, samesite="strict")  # fmt: skip
        return response

    @router.post("/signout")
    async def sign_out(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
        try:
            doorman.check_csrf(who(request), csrf)
        except ModelpactError as error:
            return refused(error)
        doorman.end(request.cookies.get(COOKIE))
        response = page("message.html", title="Signed out", viewer=None,
                        message="You are signed out.")  # fmt: skip
        response.delete_cookie(COOKIE, path="/dashboard")
        return response

    @router.post("/link")
    async def partner_link(authorization: Annotated[str | None, Header()] = None) -> Response:
        """A partner's one-time sign-in link, for a session token (proof of its key)."""
        scheme, _, token = (authorization or "").partition(" ")
        try:
            if scheme.lower() != "bearer" or not token:
                raise Unauthenticated("send a session token as a Bearer token")
            active = await read(sessions.authenticate, token.strip())
            key = await read(workspace.owner_key)
            link = make_link(key, Viewer("partner", active.partner))
        except ModelpactError as error:
            return JSONResponse({"detail": error.diagnostics()}, status_code=_status(error))
        await audit(
            SessionEntry(
                time=workspace.clock(),
                action="dashboard",
                actor=active.partner,
                subject=active.token_id,
                charter=active.charter,
                purpose=active.purpose,
                decision="allow",
                reasons=(f"a dashboard sign-in link for {LINK_MINUTES} minutes",),
            )
        )
        return JSONResponse({"path": f"/dashboard/signin?link={link}",
                             "minutes": LINK_MINUTES})  # fmt: skip

    @router.get("")
    async def overview(request: Request) -> Response:
        try:
            session = who(request)
            if session.viewer.role == "partner":
                target = f"/dashboard/partners/{session.viewer.partner}"
                return RedirectResponse(target, status_code=303, headers=_HEADERS)
            view = await read(activity.overview)
        except ModelpactError as error:
            return refused(error)
        return page("overview.html", view=view, viewer=session.viewer, csrf=session.csrf)

    async def partner_view(request: Request, partner: str) -> tuple[BrowserSession, Any]:
        """The viewer's session and ``partner``'s view, if the viewer may see it."""
        session = who(request)
        if not session.viewer.may_see(partner):
            raise NotFound(f"no partner named {partner[:64]}")
        return session, await read(activity.partner, partner)

    @router.get("/partners/{partner}")
    async def partner_page(request: Request, partner: str) -> Response:
        try:
            session, view = await partner_view(request, partner)
        except ModelpactError as error:
            return refused(error)
        return page("partner.html", view=view, viewer=session.viewer, csrf=session.csrf,
                    series=view.series.as_dict())  # fmt: skip

    @router.get("/partners/{partner}/recent")
    async def partner_recent(request: Request, partner: str) -> Response:
        try:
            _, view = await partner_view(request, partner)
        except ModelpactError as error:
            return refused(error)
        return page("_recent.html", lines=view.recent)

    async def owner_page(
        request: Request, template: str, fn: Callable[[], Any], name: str, **extra: Any
    ) -> Response:
        """A page only the owner sees, showing ``fn()`` as ``name``."""
        try:
            session = who(request)
            owner(session)
            value = await read(fn)
        except ModelpactError as error:
            return refused(error)
        return page(template, viewer=session.viewer, csrf=session.csrf, **{name: value}, **extra)

    @router.get("/models")
    async def models(request: Request) -> Response:
        return await owner_page(request, "models.html", activity.overview, "view")

    @router.get("/incidents")
    async def incidents(request: Request) -> Response:
        return await owner_page(request, "incidents.html", activity.incidents, "lines")

    @router.get("/review")
    async def review(request: Request) -> Response:
        done = request.query_params.get("done")
        return await owner_page(request, "review.html", activity.grants, "grants", done=done)

    @router.post("/partners/{partner}/{verb}")
    async def change(
        request: Request,
        partner: str,
        verb: str,
        csrf: Annotated[str, Form()] = "",
        reason: Annotated[str, Form(max_length=300)] = "",
    ) -> Response:
        try:
            session = who(request)
            owner(session)
            doorman.check_csrf(session, csrf)
            if verb not in ("suspend", "resume", "revoke"):
                raise NotFound("no such action")
            if not reason.strip():
                raise InvalidInput(f"say why you {verb} {partner[:64]}: a reason is required")
            directory = PartnerDirectory(workspace)
            await read(lambda: directory.change_status(partner, verb, actor="owner",
                                                       reason=reason.strip()))  # fmt: skip
        except ModelpactError as error:
            return refused(error)
        return RedirectResponse(f"/dashboard/review?done={verb}+{partner}", status_code=303,
                                headers=_HEADERS)  # fmt: skip

    app.include_router(router)
    app.mount("/dashboard/static", StaticFiles(directory=_HERE / "static"), name="dashboard")
