"""The console's web page: server-rendered Jinja2, a little plain JS for the live parts.

Pages need the session cookie (from a one-time link or the token pasted at /login); every
state-changing form carries the session's CSRF token and is refused without it.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import Markup

from bot.pipeline.takeover import FOREVER
from bot.web import charts, linking, times
from bot.web.auth import SESSION_COOKIE, Auth
from bot.web.console import BadRequest, Console, NotFound, SendFailed, phone_of
from bot.web.directory import Consoles
from bot.web.forward import ServedElsewhere, forward_send
from bot.web.i18n import Texts

HERE = Path(__file__).parent
_env = Environment(loader=FileSystemLoader(HERE / "templates"),
                   autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)


def url_phone(phone: str) -> str:
    """A customer in a URL path: the digits only (`/customers/5215512345678`), nothing to
    escape; `lid:…` and `g:…` keys escaped."""
    digits = phone.removeprefix("+")
    return digits if digits.isdigit() else quote(phone, safe="")


_env.filters["urlphone"] = url_phone


@pass_context
def _local(ctx: Context, at: str | None) -> str:
    """`{{ m.at | local }}`: the business's time, labelled (`bot.web.times`)."""
    return times.shown(at, ctx["zone"])


_env.filters["local"] = _local


def wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", "")


def to_login(request: Request) -> Response:
    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)


def texts_of(request: Request, s: Session | None = None) -> Texts:
    """The words of a page: its number's business language (the configured number's
    before logging in)."""
    console: Console = s.console if s is not None else request.app.state.console
    return Texts(console.language)


def render(name: str, request: Request, status: int = 200, **ctx: Any) -> HTMLResponse:
    session = ctx.get("s")
    console: Console = session.console if session is not None else request.app.state.console
    html = _env.get_template(name).render(request=request, zone=console.zone,
                                          t=texts_of(request, session), **ctx)
    return HTMLResponse(html, status_code=status)


def error_page(request: Request, error: BaseException, status: int = 404) -> HTMLResponse:
    return render("error.html", request, status, error=texts_of(request).error(error))


def pause_words(t: Texts, paused_until: str | None, zone: tzinfo) -> str:
    """How a chat's pause reads (`bot.pipeline.takeover.pause_text`, in the page's words)."""
    if not paused_until:
        return t("pause.on")
    until = datetime.fromisoformat(paused_until)
    return t("pause.off") if until >= FOREVER else t("pause.until",
                                                      when=times.shown(until, zone))


class Flash:
    """What a form's POST leaves for the page it redirects to, once per session
    (POST-redirect-GET: reloading that page shows it again, never sends the form twice)."""

    def __init__(self) -> None:
        self._by_session: dict[str, dict[str, Any]] = {}

    def put(self, sid: str, **ctx: Any) -> None:
        if len(self._by_session) > 1000:  # never read (a closed tab): forget the oldest
            self._by_session.pop(next(iter(self._by_session)))
        self._by_session[sid] = ctx

    def take(self, sid: str) -> dict[str, Any]:
        return self._by_session.pop(sid, {})


class Session:
    """A logged-in page of one number: `console` is its, `base` prefixes its links (""
    for the configured number, `/n/<key>` for any other), `numbers` every number's key."""

    def __init__(self, request: Request, console: Console | None = None) -> None:
        auth: Auth = request.app.state.auth
        self.auth = auth
        self.consoles: Consoles = request.app.state.consoles
        self.console: Console = console or self.consoles.home
        home = self.console is self.consoles.home
        self.base = "" if home else f"/n/{quote(self.console.tenant, safe='')}"
        self.numbers: list[str] = [self.console.tenant]
        sid = auth.session_id(request.cookies.get(SESSION_COOKIE))
        if sid is None:
            raise HTTPException(401, "log in first")
        self.sid = sid
        self.csrf = auth.csrf_for(sid)
        self.flash: Flash = request.app.state.flash

    @property
    def t(self) -> Texts:
        """The words of this number's pages (its business language)."""
        return Texts(self.console.language)

    @property
    def key(self) -> str:
        return self.console.tenant

    def redirect(self, to: str, **ctx: Any) -> Response:
        """303 to `to`, which shows `ctx` once (an error, the text kept, its status)."""
        self.flash.put(self.sid, **ctx)
        return RedirectResponse(to, status_code=303)

    def check(self, csrf: str) -> None:
        if not self.auth.csrf_ok(self.sid, csrf):
            raise HTTPException(403, "the form is stale or forged (CSRF check failed): "
                                "reload the page and try again")


async def session_of(request: Request) -> Session:
    """The session of a page: the configured number's, or under /n/{key} that number's
    (`NotFound` when there is none, once the session is known to be good)."""
    try:
        s = Session(request)
    except HTTPException:
        raise HTTPException(401, "log in first") from None
    key = request.path_params.get("key")
    if key is not None:
        s = Session(request, await s.consoles.get(key))
    s.numbers = await s.consoles.keys()  # the switcher, when there is more than one
    return s


CsrfField = Annotated[str, Form()]


def router(prefix: str = "") -> APIRouter:
    """The pages: the configured number's at the root, and with `prefix` "/n/{key}" the
    same pages of any number of the fleet (`Session.base` keeps their links there)."""
    pages = APIRouter(prefix=prefix, include_in_schema=False)
    if not prefix:
        _login_routes(pages)

    @pages.get("/")
    async def dashboard(request: Request) -> Response:
        s = await session_of(request)
        return await _dashboard(request, s, **s.flash.take(s.sid))

    @pages.get("/connection")
    async def connection(request: Request) -> Response:
        """The dashboard's live card (fetched by console.js); opened as a page, the
        dashboard it belongs to."""
        s = await session_of(request)
        if request.headers.get("sec-fetch-mode") == "navigate":
            return RedirectResponse(f"{s.base}/", status_code=303)
        return render("_connection.html", request, s=s, conn=s.console.connection())

    @pages.get("/login/qr.png")
    async def qr(request: Request) -> Response:
        s = await session_of(request)
        data = s.console.qr_png()
        if data is None:
            return Response(status_code=404)
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})

    @pages.post("/login/pair-code")
    async def pair_code(request: Request, csrf: CsrfField = "",
                        phone: Annotated[str, Form()] = "") -> Response:
        s = await session_of(request)
        s.check(csrf)
        try:
            got = await s.console.pair_code(phone)
        except (linking.InvalidPhone, linking.AlreadyLinked, linking.NotReady) as exc:
            status = {linking.InvalidPhone: 422, linking.AlreadyLinked: 409}.get(
                type(exc), 503)
            return s.redirect(f"{s.base}/", status=status, pair_error=s.t.error(exc),
                              pair_phone=phone)
        return s.redirect(f"{s.base}/", pair=got)

    @pages.get("/customers")
    async def customers(request: Request, q: str = "", stage: str = "",
                        page: Annotated[int, Query(ge=1)] = 1) -> Response:
        s = await session_of(request)
        error = ""
        try:
            items, total = await s.console.list_customers(
                stage=stage or None, q=q, offset=(page - 1) * 50, limit=50)
        except BadRequest as exc:
            items, total, error = [], 0, s.t.error(exc)
        return render("customers.html", request, s=s, items=items, total=total, q=q,
                       stage=stage, page=page, pages=max(1, (total + 49) // 50), error=error)

    @pages.get("/customers/{phone}")
    async def customer(request: Request, phone: str) -> Response:
        s = await session_of(request)
        return await _customer(request, s, phone, **s.flash.take(s.sid))

    def _back(s: Session, phone: str, notice: str, **params: Any) -> Response:
        """The customer's page with the banner `notice` (a key of the catalogue: the page
        says it in its language; nothing of it in the URL)."""
        return s.redirect(_customer_url(s, phone), notice=s.t(f"notice.{notice}", **params))

    @pages.post("/customers/{phone}/pause")
    async def pause(request: Request, phone: str, csrf: CsrfField = "",
                    hours: Annotated[str, Form()] = "") -> Response:
        s = await session_of(request)
        s.check(csrf)
        seconds = float(hours) * 3600 if hours.strip().replace(".", "", 1).isdigit() else None
        await s.console.set_pause(phone, seconds)
        return _back(s, phone, "paused")

    @pages.post("/customers/{phone}/resume")
    async def resume(request: Request, phone: str, csrf: CsrfField = "") -> Response:
        s = await session_of(request)
        s.check(csrf)
        await s.console.resume(phone)
        return _back(s, phone, "resumed")

    @pages.post("/customers/{phone}/send")
    async def send(request: Request, phone: str, csrf: CsrfField = "",
                   text: Annotated[str, Form()] = "") -> Response:
        s = await session_of(request)
        s.check(csrf)
        try:
            via = await _send(s, phone, text)
        except (BadRequest, SendFailed, ServedElsewhere) as exc:  # the page again, text kept
            status = exc.status if isinstance(exc, ServedElsewhere) else (
                502 if isinstance(exc, SendFailed) else 422)
            return s.redirect(_customer_url(s, phone), draft=text, status=status,
                              error=s.t("error.not_sent", why=s.t.error(exc)))
        return _back(s, phone, "sent_via", node=via) if via else _back(s, phone, "sent")

    @pages.post("/followups/{fid}/cancel")
    async def cancel(request: Request, fid: str, csrf: CsrfField = "",
                     phone: Annotated[str, Form()] = "") -> Response:
        s = await session_of(request)
        s.check(csrf)
        try:
            await s.console.cancel_followup(fid)
        except (NotFound, BadRequest) as exc:
            return s.redirect(_customer_url(s, phone), error=s.t.error(exc), status=404)
        return _back(s, phone, "cancelled")

    @pages.get("/runs/{run_id}")
    async def run(request: Request, run_id: int) -> Response:
        s = await session_of(request)
        try:
            found = await s.console.run(run_id)
        except NotFound as exc:
            return render("error.html", request, 404, s=s, error=s.t.error(exc))
        return render("run.html", request, s=s, run=found)

    return pages


def _login_routes(pages: APIRouter) -> None:
    """Once, at the root: the session is the console's, whatever the number."""
    pages.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @pages.get("/login")
    async def login_form(request: Request, code: str = "", next: str = "/") -> Response:
        auth: Auth = request.app.state.auth
        if code:
            if auth.use_link(code):
                return _logged_in(auth, next)
            return render("login.html", request, 401,
                          error=texts_of(request)("login.bad_link"))
        return render("login.html", request, error="")

    @pages.post("/login")
    async def login(request: Request, token: Annotated[str, Form()] = "",
                    next: Annotated[str, Form()] = "/") -> Response:
        auth: Auth = request.app.state.auth
        if auth.token_ok(token):  # the right token always gets in
            return _logged_in(auth, next)
        client = request.client.host if request.client else "?"
        if auth.limited(client):
            return render("login.html", request, 429,
                          error=texts_of(request)("login.too_many"))
        auth.failed(client)
        return render("login.html", request, 401, error=texts_of(request)("login.wrong_token"))

    @pages.post("/logout")
    async def logout(request: Request, csrf: CsrfField = "") -> Response:
        (await session_of(request)).check(csrf)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE)
        return resp

    @pages.get("/favicon.ico")
    async def favicon() -> Response:
        return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")


async def _send(s: Session, phone: str, text: str) -> str | None:
    """Send as the business from a page; the node it went through when it was forwarded
    to the number's owner (with this node's token: `bot.web.forward`)."""
    c = s.console
    if not text.strip():
        raise BadRequest(key="empty_text")
    if s.consoles.serving(c.tenant):
        await c.send(phone, text)
        return None
    got = await forward_send(c, {"to": phone_of(phone), "text": text}, token=s.auth.token,
                             node=s.consoles.node)
    return str(got.get("node") or "")


def _customer_url(s: Session, phone: str) -> str:
    try:
        return f"{s.base}/customers/{url_phone(phone_of(phone))}"
    except BadRequest:
        return f"{s.base}/customers"


async def _customer(request: Request, s: Session, phone: str, status: int = 200,
                    **ctx: Any) -> Response:
    try:
        found = await s.console.customer(phone)
        lines = await s.console.messages(phone)
    except (NotFound, BadRequest) as exc:
        return render("error.html", request, 404, s=s, error=s.t.error(exc))
    for f in found["followups"]:
        f["when"] = s.console.followup_time(f, s.t)
    found["pause"] = pause_words(s.t, found["paused_until"] if found["paused"] else None,
                                 s.console.zone)
    return render("customer.html", request, status, s=s, c=found, lines=lines, **ctx)


async def _dashboard(request: Request, s: Session, status: int = 200,
                     **ctx: Any) -> Response:
    c, t = s.console, s.t
    days = await c.days(30)
    return render("dashboard.html", request, status, s=s, conn=c.connection(),
                   today=await c.today(), alerts=list(c.alerts.recent)[:10],
                   msgs_chart=Markup(charts.bars(days, "messages_in", t=t,
                                                 label=t("today.messages_in"))),
                   out_chart=Markup(charts.bars(days, "messages_out", color="#37a", t=t,
                                                label=t("today.messages_out"))),
                   cost_chart=Markup(charts.bars(days, "cost_usd", color="#c73", t=t,
                                                 label=t("days.cost"))),
                   funnel=Markup(charts.funnel(await c.funnel(), t=t)), **ctx)


def _logged_in(auth: Auth, next_path: str) -> Response:
    target = next_path if next_path.startswith("/") and not next_path.startswith("//") else "/"
    resp = RedirectResponse(target, status_code=303)
    resp.set_cookie(SESSION_COOKIE, auth.new_session(), max_age=int(auth.session_seconds),
                    httponly=True, samesite="strict", path="/")
    return resp
