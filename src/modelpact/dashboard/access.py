"""Who may see the dashboard: one-time sign-in links and the browser sessions they open.

A sign-in link carries a token signed by the workspace's owner key: who it is for (the
owner, or one partner), when it expires (minutes), and a random nonce that the gateway
accepts once.  ``modelpact dashboard link`` makes the owner's; a partner gets its own from
the gateway by proving its key (a session token, as for predictions:
``modelpact partner dashboard``).  Following the link opens a browser session: a random id
in a ``Secure``, ``HttpOnly``, ``SameSite=Strict`` cookie (the gateway keeps its hash) and a
CSRF token that every form sends back.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass

from modelpact.crypto import SigningKey, VerifyKey, constant_time_equal, sha256_hex
from modelpact.errors import Denied, Expired, InvalidInput, ModelpactError, Unauthenticated

__all__ = ["LINK_MINUTES", "BrowserSession", "Doorman", "Viewer", "make_link"]

LINK_MINUTES = 10
SESSION_SECONDS = 8 * 3600
_CONTEXT = b"modelpact-dashboard-link/v1\n"  # what else this key signs never reads as a link


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking: the owner, or one partner."""

    role: str  # "owner" | "partner"
    partner: str | None = None

    def may_see(self, partner: str) -> bool:
        return self.role == "owner" or self.partner == partner


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_link(key: SigningKey, viewer: Viewer, *, minutes: int = LINK_MINUTES) -> str:
    """A one-time sign-in token for ``viewer``, valid ``minutes`` from now."""
    if not 1 <= minutes <= 60:
        raise InvalidInput("a sign-in link lasts 1 to 60 minutes")
    payload = json.dumps(
        {
            "role": viewer.role,
            "partner": viewer.partner,
            "exp": int(time.time()) + minutes * 60,
            "nonce": _b64(secrets.token_bytes(16)),
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    return f"{_b64(payload)}.{_b64(key.sign(_CONTEXT + payload))}"


@dataclass
class BrowserSession:
    viewer: Viewer
    csrf: str
    expires: float


class Doorman:
    """Checks sign-in links once and keeps the browser sessions they open (in memory: a
    restarted gateway asks everyone to sign in again)."""

    def __init__(self, owner: VerifyKey, *, most: int = 1000) -> None:
        self._owner = owner
        self._used: dict[str, float] = {}
        self._sessions: dict[str, BrowserSession] = {}
        self._most = most
        self._lock = threading.Lock()

    def admit(self, token: str) -> tuple[str, BrowserSession]:
        """A new browser session for a valid, unused link: ``(cookie value, session)``."""
        try:
            text, signature = token.split(".")
            payload = _unb64(text)
            self._owner.verify(_unb64(signature), _CONTEXT + payload)
            claims = json.loads(payload)
            viewer = Viewer(str(claims["role"]), claims.get("partner"))
            expires, nonce = float(claims["exp"]), str(claims["nonce"])
        except ModelpactError:
            raise Unauthenticated("this sign-in link is not one the owner signed") from None
        except (ValueError, KeyError, TypeError):
            raise Unauthenticated("this is not a sign-in link") from None
        if viewer.role not in ("owner", "partner") or (
            viewer.role == "partner" and not viewer.partner
        ):
            raise Unauthenticated("this sign-in link names nobody")
        now = time.time()
        if expires < now:
            raise Expired("this sign-in link has expired", hint="ask for a new one")
        with self._lock:
            self._used = {n: t for n, t in self._used.items() if t >= now}
            if nonce in self._used:
                raise Denied("this sign-in link was used already", hint="ask for a new one")
            self._used[nonce] = expires
            self._sessions = {k: s for k, s in self._sessions.items() if s.expires >= now}
            if len(self._sessions) >= self._most:
                raise Denied("too many dashboard sessions; try again later")
            cookie = secrets.token_urlsafe(32)
            session = BrowserSession(viewer, secrets.token_urlsafe(24), now + SESSION_SECONDS)
            self._sessions[sha256_hex(cookie.encode())] = session
        return cookie, session

    def session(self, cookie: str | None) -> BrowserSession:
        """The browser session behind a cookie; :class:`Unauthenticated` if none."""
        if not cookie:
            raise Unauthenticated("sign in first", hint="modelpact dashboard link")
        with self._lock:
            found = self._sessions.get(sha256_hex(cookie.encode()))
        if found is None or found.expires < time.time():
            raise Unauthenticated("your dashboard session has ended", hint="sign in again")
        return found

    @staticmethod
    def check_csrf(session: BrowserSession, sent: str | None) -> None:
        if not sent or not constant_time_equal(sent, session.csrf):
            raise Denied("the form's CSRF token does not match this session")

    def end(self, cookie: str | None) -> None:
        if cookie:
            with self._lock:
                self._sessions.pop(sha256_hex(cookie.encode()), None)
