"""``work.keys``: the rows a KEK rotation re-wraps, each write a compare-and-set."""

from __future__ import annotations

from modelpact.store import MonitorStateRecord, SqlStore
from tests.store.test_contract import T0, partner, version


def test_model_keys_are_replaced_only_if_unchanged(store: SqlStore) -> None:
    with store.unit_of_work() as uow:
        uow.models.add_version(version(number="1"), serve=True)
        uow.models.add_version(version(number="2"), serve=False)
    old = version().wrapped_key
    with store.unit_of_work() as uow:
        assert [(m, v) for m, v, _ in uow.keys.model_keys()] == [
            ("fraud-detector", "1"),
            ("fraud-detector", "2"),
        ]
        assert uow.keys.replace_model_key("fraud-detector", "1", old, b"new")
        assert not uow.keys.replace_model_key("fraud-detector", "1", old, b"newer")
        assert not uow.keys.replace_model_key("fraud-detector", "9", old, b"x")
    with store.unit_of_work() as uow:
        assert uow.models.get_version("fraud-detector", "1").wrapped_key == b"new"
        assert uow.models.get_version("fraud-detector", "2").wrapped_key == old


def test_watermark_keys_and_monitor_states_are_replaced_only_if_unchanged(
    store: SqlStore,
) -> None:
    with store.unit_of_work() as uow:
        uow.partners.add(partner("acme"))
        uow.watermarks.add_key("acme", "sealed-1", T0)
        uow.monitor.save_state(MonitorStateRecord("acme", "c", "m", state="s1", updated_at=T0))
    with store.unit_of_work() as uow:
        assert uow.keys.watermark_keys() == [("acme", "sealed-1")]
        assert uow.keys.monitor_states() == [("acme", "c", "m", "s1")]
        assert not uow.keys.replace_watermark_key("acme", "other", "sealed-2")
        assert uow.keys.replace_watermark_key("acme", "sealed-1", "sealed-2")
        assert not uow.keys.replace_monitor_state("acme", "c", "m", "other", "s2")
        assert uow.keys.replace_monitor_state("acme", "c", "m", "s1", "s2")
    with store.unit_of_work() as uow:
        assert uow.watermarks.key("acme") == "sealed-2"
        state = uow.monitor.state("acme", "c", "m")
        assert state is not None and state.state == "s2"
