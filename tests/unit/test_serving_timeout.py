"""The service's request timeout: 504 when no response starts in time, and no timer left behind per request."""

from __future__ import annotations

import asyncio

import pytest

from serving.service import PromptTimeout


def _call(app, timeout: float) -> tuple[list[dict], list]:
    """Run one HTTP request through ``PromptTimeout(app)``: the messages sent, and the timers still live after it."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    async def main() -> list:
        await PromptTimeout(app, timeout=timeout)({"type": "http", "path": "/score"}, receive, send)
        return [h for h in asyncio.get_running_loop()._scheduled if not h.cancelled()]

    loop = asyncio.new_event_loop()
    try:
        return sent, loop.run_until_complete(main())
    finally:
        loop.close()


async def _answer(send, body: bytes = b"{}") -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_bentoml_builds_its_middleware_stack_with_it():
    from bentoml._internal.server.http import traffic

    assert traffic.TimeoutMiddleware is PromptTimeout


def test_a_prompt_answer_passes_and_leaves_no_timer_behind():
    async def app(scope, receive, send):
        await _answer(send, b'{"ok":true}')

    sent, timers = _call(app, timeout=60)
    assert [m.get("status") for m in sent] == [200, None] and sent[1]["body"] == b'{"ok":true}'
    assert timers == []  # BentoML's own middleware leaves one live for 60 s, with its future and context


def test_no_response_in_time_is_a_504():
    async def app(scope, receive, send):
        await asyncio.sleep(5)
        await _answer(send)

    sent, _ = _call(app, timeout=0.05)
    assert sent[0]["status"] == 504 and b"0.05 seconds" in sent[1]["body"]


def test_a_started_response_is_not_cut_off():
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(0.1)
        await send({"type": "http.response.body", "body": b"late"})

    sent, _ = _call(app, timeout=0.02)
    assert [m.get("status") for m in sent] == [200, None] and sent[1]["body"] == b"late"


def test_the_apps_own_timeout_error_is_not_taken_for_the_deadline():
    async def app(scope, receive, send):
        raise TimeoutError("the app's own")

    with pytest.raises(TimeoutError, match="the app's own"):
        _call(app, timeout=60)
