"""Hostile websocket connections on every socket route: anonymous, foreign or missing origins, another
team's project or run, a deactivated user's live session, and messages the server must ignore.

tests/refact_site/test_websockets.py covers the events socket and the real server (daphne);
this file runs every route through the same checks.
"""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from refact_site.asgi import application

# The consumers reach the database from their own threads: the rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


def connect(path: str, *, origin: str | None = "http://localhost", session: str | None = None) -> tuple[bool, Any]:
    headers = [(b"host", b"localhost")]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if session:
        headers.append((b"cookie", f"sessionid={session}".encode()))

    async def scenario() -> tuple[bool, Any]:
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, code = await communicator.connect(timeout=5)
        if connected:
            await communicator.disconnect()
        return connected, code

    return async_to_sync(scenario)()


def session_of(client, user) -> str:
    from django.test import Client

    browser = Client()  # one browser per user: logging out would delete the session being tested
    browser.force_login(user)
    return browser.cookies["sessionid"].value


@pytest.fixture
def routes(alice) -> list[str]:
    from finetune.models import FinetuneRun
    from projects.services import project_create

    project = project_create(name="watched", team=alice.team)
    run = FinetuneRun.objects.create(project=project, team=alice.team, base_model="tiny-test", name="watched-run")
    return ["/ws/events/", f"/ws/projects/{project.pk}/", f"/ws/finetune/runs/{run.pk}/"]


def test_every_route_admits_its_owner(client, alice, routes) -> None:
    session = session_of(client, alice)
    for path in routes:
        assert connect(path, session=session)[0], path


def test_every_route_refuses_an_anonymous_socket_with_4401(routes) -> None:
    for path in routes:
        assert connect(path) == (False, 4401), path


FOREIGN_ORIGINS = [
    "http://evil.example",
    "http://localhost.evil.example",
    "http://localhost@evil.example",
    "null",
    "file://",
    None,  # no Origin header at all
]


def test_every_route_refuses_a_foreign_or_missing_origin(client, alice, routes) -> None:
    session = session_of(client, alice)
    for origin in FOREIGN_ORIGINS:
        for path in routes:
            connected, _ = connect(path, origin=origin, session=session)
            assert not connected, (path, origin)


def test_another_teams_project_and_run_are_refused_as_not_found(client, bob, routes) -> None:
    session = session_of(client, bob)
    for path in routes[1:]:
        assert connect(path, session=session) == (False, 4404), path
    for missing in ("/ws/projects/999999999/", "/ws/finetune/runs/999999999/"):
        assert connect(missing, session=session) == (False, 4404)


def test_a_deactivated_users_live_session_no_longer_opens_sockets(client, alice, routes) -> None:
    session = session_of(client, alice)
    alice.is_active = False
    alice.save()
    for path in routes:
        assert connect(path, session=session) == (False, 4401), path


def test_a_forged_session_cookie_is_anonymous(routes) -> None:
    for cookie in ("x" * 32, "' OR 1=1 --", "a" * 4000):
        assert connect(routes[0], session=cookie) == (False, 4401)


def test_messages_from_the_browser_are_ignored(client, alice, routes) -> None:
    session = session_of(client, alice)

    async def scenario() -> None:
        headers = [
            (b"host", b"localhost"),
            (b"origin", b"http://localhost"),
            (b"cookie", f"sessionid={session}".encode()),
        ]
        communicator = WebsocketCommunicator(application, routes[0], headers=headers)
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        for text in ('{"type": "live.event", "event": {"forged": true}}', "not json", "[" * 10_000):
            await communicator.send_to(text_data=text)
        # A malformed frame must not take the socket down; nothing is echoed or relayed.
        assert await communicator.receive_nothing(timeout=0.5)
        await communicator.disconnect()

    async_to_sync(scenario)()
