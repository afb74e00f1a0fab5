"""Schemathesis against the running service's own OpenAPI document (/docs.json), every operation, every role.

Runs on the session's ``live_service``. Bounded: a few positive and negative examples per
operation (derandomised, no example database), each sent with no key and with a fresh key of
each role (bank, regulator, admin).
Checks: no 5xx; every 4xx body is JSON that names the problem (an ``error`` text or a
``detail`` list), and a 400/422 for a bad input names the field or parameter.
"""

from __future__ import annotations

import json

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

pytestmark = pytest.mark.slow  # the fast path (-m "not slow") skips it; the full suite runs it

ROLES = ("none", "bank", "regulator", "admin")
EXAMPLES = {GenerationMode.POSITIVE: 8, GenerationMode.NEGATIVE: 6}


def _names(operation) -> set[str]:
    """Parameter and body field names of an operation (what a validation error should name)."""
    names = {p.name for p in operation.iter_parameters()}
    for body in operation.body:
        names |= set((body.definition.get("schema") or {}).get("properties", {}))
    text = json.dumps(operation.definition.raw)
    return names | {n for n in ("merchant_id", "merchant_ids", "features") if n in text}


def problem(response, names: set[str]) -> str | None:
    """Why a response breaks the contract of this test, or None."""
    status = response.status_code
    if status >= 500:
        return f"server error {status}: {response.text[:300]}"
    if status < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return f"{status} body is not JSON: {response.text[:200]!r}"
    if not isinstance(body, dict) or not (body.get("error") or body.get("detail")):
        return f"{status} body names no problem: {response.text[:200]}"
    if status in (400, 422):
        text = json.dumps(body)
        detail = body.get("detail") if isinstance(body.get("detail"), list) else []
        # a located error names its field; an unlocated one (loc []) is about the whole body
        located = [d for d in detail if isinstance(d, dict) and d.get("msg") and isinstance(d.get("loc"), list)]
        if not located and not any(n in text for n in names) and "JSON" not in text:
            return f"{status} names no field or parameter: {text[:300]}"
    return None


def test_every_operation_every_role_no_5xx_and_4xx_named(live_service):
    url = live_service["url"]
    doc = httpx.get(f"{url}/docs.json", timeout=60).json()
    # the schemas are JSON Schema 2020-12 (numeric exclusiveMinimum, type null): OpenAPI 3.1, labelled so
    assert doc["openapi"] == "3.1.0"
    schema = schemathesis.openapi.from_dict(doc)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {"/score", "/score_batch", "/decide", "/model", "/admin/reload"} <= {op.path for op in operations}
    sent = 0
    for op in operations:
        names = _names(op)
        keys = {role: live_service["new_key"](role) for role in ROLES[1:]}  # fresh rate buckets per operation
        for mode, examples in EXAMPLES.items():

            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case):
                nonlocal sent
                for role in ROLES:
                    headers = {"Authorization": f"Bearer {keys[role]}"} if role != "none" else {}
                    response = case.call(base_url=url, headers=headers, timeout=60)
                    sent += 1
                    why = problem(response, names)
                    if why:
                        failures.append(f"{op.method.upper()} {op.path} ({mode.value}, {role}): {why}")

            try:
                run()
            except Unsatisfiable:
                pass  # nothing to negate in this operation
    print(f"{sent} requests over {len(operations)} operations")
    assert sent > 100
    assert not failures, "\n".join(sorted(set(failures))[:30])
