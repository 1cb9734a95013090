"""The state cache: one read per unit of work while nothing changes; any change, from any
process, on the very next unit of work."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from modelpact.errors import Denied, NotFound, Unauthenticated
from modelpact.policy import AccessRequest
from modelpact.services import (
    CharterDesk,
    ModelRegistry,
    PartnerDirectory,
    Workspace,
    open_workspace,
)
from modelpact.services.decisions import Decider
from modelpact.services.serving import ModelServer
from modelpact.services.sessions import SessionDesk
from modelpact.services.state_cache import StateCache
from modelpact.store import UnitOfWork
from tests.services.conftest import FixedClock
from tests.services.test_charters import PARTNER, REQUEST, envelope
from tests.services.test_sessions import AUDIENCE, GLOBEX, PURPOSE, apply_version, open_session

MODEL = "fraud-detector"


@pytest.fixture
def ready(workspace: Workspace, onnx_bytes: bytes) -> Workspace:
    """acme (with a charter) and globex enrolled; the model at 1.0.0 (served) and 1.1.0."""
    registry = ModelRegistry(workspace)
    registry.add(MODEL, onnx_bytes, version="1.0.0", source="m.onnx")
    registry.add(MODEL, onnx_bytes, version="1.1.0", source="m.onnx")
    registry.rollback(MODEL, to_version="1.0.0")
    partners = PartnerDirectory(workspace)
    partners.enrol("acme", PARTNER.verify_key.encode())
    partners.enrol("globex", GLOBEX.verify_key.encode())
    CharterDesk(workspace).apply(envelope(workspace), source="e.json")
    return workspace


class Parts:
    """A desk, a decider and a server sharing one cache, as the gateway builds them."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.cache = StateCache(ws)
        self.desk = SessionDesk(ws, audience=AUDIENCE, cache=self.cache)
        self.decider = Decider(ws, cache=self.cache)
        self.server = ModelServer(ws, cache=self.cache)

    @contextmanager
    def uow(self) -> Iterator[UnitOfWork]:
        with self.ws.store.unit_of_work(read_only=True) as uow:
            yield uow

    def request(self, token: str, version: str | None = None) -> tuple[str, bool]:
        """What the gateway reads for one prediction: session, version, decision."""
        with self.uow() as uow:
            session = self.desk.authenticate(token, uow)
            resolved = self.server.resolve(MODEL, version, uow)
            access = AccessRequest(
                partner=session.partner,
                charter=session.charter,
                purpose=session.purpose,
                action=REQUEST.action,
                model=MODEL,
                version=resolved,
                at=self.ws.clock(),
            )
            return resolved, self.decider.decide(access, uow).allowed


@pytest.fixture
def parts(ready: Workspace) -> Parts:
    return Parts(ready)


@pytest.fixture
def other(ready: Workspace) -> Iterator[Workspace]:
    """The same workspace opened a second time: the owner's CLI in another process."""
    with open_workspace(ready.root, clock=ready.clock) as second:
        yield second


@contextmanager
def selects(ws: Workspace) -> Iterator[list[str]]:
    """The SELECT statements run on ``ws``'s store while the block runs."""
    seen: list[str] = []
    engine: sa.Engine = ws.store._engine  # type: ignore[attr-defined]

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(" ".join(statement.split()))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def test_a_cached_request_reads_only_the_counter(parts: Parts, clock: FixedClock) -> None:
    token = open_session(parts.desk, clock).token
    assert parts.request(token) == ("1.0.0", True)  # fills the cache
    with selects(parts.ws) as first:
        assert parts.request(token) == ("1.0.0", True)
        assert parts.request(token, "1.1.0") == ("1.1.0", True)
    assert len(first) == 3  # the counter, then the one version not read before
    assert "state_changes" in first[0]
    with selects(parts.ws) as cached:
        assert parts.request(token) == ("1.0.0", True)
        assert parts.request(token, "1.1.0") == ("1.1.0", True)
    assert len(cached) == 2
    assert all("state_changes" in s for s in cached)


def test_without_a_cache_every_request_reads_everything(
    ready: Workspace, clock: FixedClock
) -> None:
    desk = SessionDesk(ready, audience=AUDIENCE)
    token = open_session(desk, clock).token
    desk.authenticate(token)
    with selects(ready) as seen:
        desk.authenticate(token)
    assert len(seen) == 3  # session, partner, charter
    assert not any("state_changes" in s for s in seen)


def test_a_suspension_elsewhere_holds_on_the_next_request(
    parts: Parts, other: Workspace, clock: FixedClock
) -> None:
    token = open_session(parts.desk, clock).token
    parts.request(token)
    PartnerDirectory(other).change_status("acme", "suspend")
    with pytest.raises(Denied, match="suspended"):
        parts.request(token)
    PartnerDirectory(other).change_status("acme", "resume")
    assert parts.request(token) == ("1.0.0", True)


def test_a_revocation_elsewhere_holds_on_the_next_request(
    parts: Parts, other: Workspace, clock: FixedClock
) -> None:
    token = open_session(parts.desk, clock).token
    kept = open_session(parts.desk, clock).token
    parts.request(token)
    parts.request(kept)
    SessionDesk(other, audience=AUDIENCE).revoke(token)
    with pytest.raises(Unauthenticated, match="revoked"):
        parts.request(token)
    assert parts.request(kept) == ("1.0.0", True)
    SessionDesk(other, audience=AUDIENCE).revoke_partner("acme")
    with pytest.raises(Unauthenticated, match="revoked"):
        parts.request(kept)


def test_a_charter_dropping_the_purpose_holds_on_the_next_request(
    parts: Parts, other: Workspace, clock: FixedClock
) -> None:
    token = open_session(parts.desk, clock).token
    parts.request(token)
    apply_version(other, 2, purposes=[PURPOSE, "research"])
    assert parts.request(token) == ("1.0.0", True)  # carried on under v2
    with parts.uow() as uow:
        assert parts.desk.authenticate(token, uow).charter_version == 2
    apply_version(other, 3, purposes=["research"])
    with pytest.raises(Denied, match="no longer lists purpose"):
        parts.request(token)


def test_a_rollback_elsewhere_holds_on_the_next_request(
    parts: Parts, other: Workspace, clock: FixedClock
) -> None:
    token = open_session(parts.desk, clock).token
    assert parts.request(token)[0] == "1.0.0"
    ModelRegistry(other).rollback(MODEL, to_version="1.1.0")
    assert parts.request(token)[0] == "1.1.0"
    ModelRegistry(other).rollback(MODEL, to_version="1.0.0")
    assert parts.request(token)[0] == "1.0.0"


def test_expiry_is_checked_against_the_clock_on_every_request(
    parts: Parts, clock: FixedClock
) -> None:
    token = open_session(parts.desk, clock).token
    parts.request(token)
    clock.advance(minutes=16)  # past the 15 minute session; nothing in the store changed
    with pytest.raises(Unauthenticated, match="expired"):
        parts.request(token)


def test_absence_is_not_kept(parts: Parts, clock: FixedClock, onnx_bytes: bytes) -> None:
    token = open_session(parts.desk, clock).token
    with parts.uow() as uow, pytest.raises(NotFound):
        parts.server.resolve(MODEL, "1.2.0", uow)
    with parts.uow() as uow, pytest.raises(NotFound):
        parts.cache.view(uow).partner("initech")
    ModelRegistry(parts.ws).add(MODEL, onnx_bytes, version="1.2.0", source="m.onnx")
    assert parts.request(token, "1.2.0") == ("1.2.0", True)
    fresh = open_session(parts.desk, clock).token  # adding a session moves no counter
    assert parts.request(fresh)[1]


def test_a_unit_of_work_that_saw_an_older_counter_adds_nothing_to_a_newer_one(
    parts: Parts, other: Workspace, clock: FixedClock
) -> None:
    open_session(parts.desk, clock)
    with parts.uow() as old:
        parts.cache.view(old)  # reads the counter (and, on SQLite, pins its snapshot)
        PartnerDirectory(other).change_status("acme", "suspend")
        with parts.uow() as new:
            assert parts.cache.view(new).partner("acme").status == "suspended"
        parts.cache.view(old).partner("acme")  # whatever its snapshot shows, kept apart
    with parts.uow() as later:
        assert parts.cache.view(later).partner("acme").status == "suspended"


def test_the_counter_is_read_once_per_unit_of_work(parts: Parts) -> None:
    with selects(parts.ws) as seen, parts.uow() as uow:
        for _ in range(3):
            parts.cache.view(uow).partner("acme")
    assert len(seen) == 2  # the counter, then the partner
    with selects(parts.ws) as seen, parts.uow() as first, parts.uow() as second:
        parts.cache.view(first)
        parts.cache.view(second)
    assert len(seen) == 2  # once in each


def test_the_cache_does_not_keep_units_of_work_alive(parts: Parts) -> None:
    with parts.uow() as uow:
        parts.cache.view(uow).partner("acme")
        gone = weakref.ref(uow)
    del uow
    gc.collect()
    assert gone() is None


def test_an_older_unit_of_work_does_not_replace_what_a_newer_counter_keeps(
    parts: Parts, other: Workspace
) -> None:
    with parts.uow() as old:
        parts.cache.view(old)  # pins its snapshot at the first counter
        PartnerDirectory(other).change_status("acme", "suspend")
        with parts.uow() as new:
            parts.cache.view(new).partner("acme")  # kept under the newer counter
        parts.cache.view(old).partner("acme")
    counter = parts.ws.store.state_counter()
    unit = parts.cache.cached_only(counter)
    assert parts.cache.view(unit).partner("acme").status == "suspended"


def test_a_cached_only_unit_answers_from_the_cache_and_misses_everything_else(
    parts: Parts, other: Workspace, clock: FixedClock
) -> None:
    from modelpact.services.state_cache import CacheMiss

    token = open_session(parts.desk, clock).token
    counter = parts.ws.store.state_counter()
    with pytest.raises(CacheMiss):  # nothing read yet at this counter
        parts.desk.authenticate(token, parts.cache.cached_only(counter))
    assert parts.request(token) == ("1.0.0", True)  # a real unit of work fills the cache
    unit = parts.cache.cached_only(parts.ws.store.state_counter())
    assert parts.desk.authenticate(token, unit).partner == "acme"
    assert parts.server.resolve(MODEL, None, unit) == "1.0.0"
    with pytest.raises(CacheMiss):  # a version never asked for
        parts.server.resolve(MODEL, "1.1.0", unit)
    with pytest.raises(CacheMiss):  # a write
        unit.state.bump()
    PartnerDirectory(other).change_status("acme", "suspend")
    moved = parts.cache.cached_only(parts.ws.store.state_counter())
    with pytest.raises(CacheMiss):  # the counter moved: nothing is kept for it yet
        parts.desk.authenticate(token, moved)
