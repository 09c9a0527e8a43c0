"""Every websocket consumer in refact_site/routing.py through the full ASGI stack (origin check, session auth).

Alice (team A) owns a project and a fine-tune run; Bob is in team B. A socket without a session, a socket of
Bob, and a socket of Alice from a foreign origin are all refused; Alice from our origin is let in.
"""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from finetune.models import FinetuneRun
from projects.models import Project
from refact_site.asgi import application
from refact_site.consumers import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
from refact_site.live import group_name, publish

pytestmark = pytest.mark.django_db(transaction=True)
OUR_ORIGIN = "http://localhost"


@pytest.fixture
def paths(alice, team_a) -> dict[str, str]:
    """One URL per consumer, each naming something of team A."""
    project = Project.objects.create(name="alpha", team=team_a)
    run = FinetuneRun.objects.create(name="alpha-run", project=project, team=team_a, base_model="tiny-test")
    return {
        "events": "/ws/events/",
        "project": f"/ws/projects/{project.pk}/",
        "run": f"/ws/finetune/runs/{run.pk}/",
    }


def session_of(client, user) -> str:
    client.force_login(user)
    return client.cookies["sessionid"].value


def attempt(path: str, *, session: str | None = None, origin: str = OUR_ORIGIN) -> tuple[bool, int | None]:
    headers = [(b"host", b"localhost"), (b"origin", origin.encode())]
    if session:
        headers.append((b"cookie", f"sessionid={session}".encode()))

    async def connect() -> tuple[bool, int | None]:
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, code = await communicator.connect()
        if connected:
            await communicator.disconnect()
        return connected, code

    return async_to_sync(connect)()


@pytest.mark.parametrize("consumer", ["events", "project", "run"])
def test_an_anonymous_socket_is_refused(paths, consumer):
    assert attempt(paths[consumer]) == (False, CLOSE_UNAUTHENTICATED)


@pytest.mark.parametrize("consumer", ["project", "run"])
def test_a_socket_of_another_team_is_refused(paths, consumer, client, bob):
    assert attempt(paths[consumer], session=session_of(client, bob)) == (False, CLOSE_NOT_FOUND)


@pytest.mark.parametrize("consumer", ["events", "project", "run"])
@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://localhost.evil.example"])
def test_a_socket_from_a_foreign_origin_is_refused(paths, consumer, origin, client, alice):
    connected, _ = attempt(paths[consumer], session=session_of(client, alice), origin=origin)
    assert not connected


@pytest.mark.parametrize("consumer", ["events", "project", "run"])
def test_the_owner_from_our_origin_is_let_in(paths, consumer, client, alice):
    assert attempt(paths[consumer], session=session_of(client, alice))[0]


@pytest.mark.services_only
def test_an_idle_socket_survives_the_redis_channel_layer(client, alice):
    """A page watches a run for minutes between events: the socket must outlive Redis read timeouts."""
    session = session_of(client, alice)
    headers = [(b"host", b"localhost"), (b"origin", OUR_ORIGIN.encode()), (b"cookie", f"sessionid={session}".encode())]

    async def scenario() -> dict:
        communicator = WebsocketCommunicator(application, "/ws/events/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        # longer than the channel layer's 5-second blocking read, and redis-py's default read timeout
        assert await communicator.receive_nothing(timeout=7)
        await sync_to_async(publish)(group_name("user", alice.pk), {"kind": "still here"})
        event = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return event

    assert async_to_sync(scenario)() == {"kind": "still here"}
