"""Policy decision cost: our engine (parsed once, entity graphs reused) beside naive cedarpy use.

Run: .venv/bin/python -m bench.policy_decisions [--n 20000] [--charters 50]

Prints microseconds per decision for, in one run and on the same requests:
- engine: modelpact.policy.PolicyEngine.decide (PolicySet parsed once, Entities cached);
- parsed-once: cedarpy.is_authorized with one pre-parsed PolicySet of all charters, entities as
  a fresh list;
- naive: cedarpy.is_authorized with the whole policy text re-parsed on every call;
- binding floor: cedarpy.is_authorized on a one-policy set with pre-parsed entities, the least
  any decision through cedarpy costs on this machine;
and the ratios between them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import cedarpy

from modelpact.charter import Action, Charter
from modelpact.crypto import SigningKey
from modelpact.policy import AccessRequest, PolicyEngine, compile_charter
from modelpact.policy.compile import PARTNER_STATUS_POLICY


def charter(index: int, owner: str) -> Charter:
    return Charter.model_validate(
        {
            "charter": f"deal-{index}",
            "version": 1,
            "owner": {"name": "Owner", "key": owner},
            "partner": {
                "id": f"partner-{index}",
                "name": "P",
                "key": SigningKey.generate().verify_key.encode(),
            },
            "objective": "Benchmark.",
            "valid": {"from": "2026-01-01T00:00:00Z", "until": "2027-01-01T00:00:00Z"},
            "purposes": ["scoring"],
            "grants": [
                {
                    "model": "model",
                    "versions": "1.*",
                    "actions": ["predict"],
                    "output": {"kind": "label"},
                }
            ],
        }
    )


def per_call(fn: Any, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--charters", type=int, default=50)
    args = parser.parse_args()
    owner = SigningKey.generate().verify_key.encode()
    compiled = [compile_charter(charter(i, owner)) for i in range(args.charters)]
    engine = PolicyEngine(compiled)
    request = AccessRequest(
        partner="partner-7",
        charter="deal-7",
        purpose="scoring",
        action=Action.PREDICT,
        model="model",
        version="1.2.0",
        at=datetime(2026, 6, 1, tzinfo=UTC),
    )
    assert engine.decide(request, partner_status="active").allowed
    assert not engine.decide(replace(request, purpose="x"), partner_status="active").allowed
    text = PARTNER_STATUS_POLICY + "\n".join(c.text for c in compiled)
    policy_set = cedarpy.PolicySet.from_str(text)
    cedar_request = engine._cedar_request(request)
    graph = engine._entity_graph(request, "active")

    engine_us = per_call(lambda: engine.decide(request, partner_status="active"), args.n)
    parsed_us = per_call(lambda: cedarpy.is_authorized(cedar_request, policy_set, graph), args.n)
    floor_set = cedarpy.PolicySet.from_str(PARTNER_STATUS_POLICY)
    floor_entities = cedarpy.Entities.from_json_str(json.dumps(graph))
    floor_us = per_call(
        lambda: cedarpy.is_authorized(cedar_request, floor_set, floor_entities), args.n
    )
    naive_n = max(args.n // 20, 100)
    naive_us = per_call(lambda: cedarpy.is_authorized(cedar_request, text, graph), naive_n)

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
        f"{platform.python_version()}, cedarpy {metadata.version('cedarpy')}"
    )
    print(f"{args.charters} charters ({len(text.splitlines())} policy lines), {args.n} decisions")
    print(f"engine        {engine_us:8.1f} us/decision")
    print(f"parsed-once   {parsed_us:8.1f} us/decision")
    print(f"naive         {naive_us:8.1f} us/decision ({naive_n} calls)")
    print(f"binding floor {floor_us:8.1f} us/decision (one policy, everything pre-parsed)")
    print(
        f"naive / engine = {naive_us / engine_us:.1f}x; parsed-once / engine = "
        f"{parsed_us / engine_us:.2f}x"
    )


if __name__ == "__main__":
    main()
