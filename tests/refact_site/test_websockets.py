from __future__ import annotations

import asyncio

import httpx
import pytest
import websockets
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from refact_site.asgi import application
from refact_site.live import group_name, publish
from tests.support.server import running_server

pytestmark = pytest.mark.django_db(transaction=True)


def headers(*, origin: str = "http://localhost", session: str | None = None) -> list[tuple[bytes, bytes]]:
    result = [(b"host", b"localhost"), (b"origin", origin.encode())]
    if session:
        result.append((b"cookie", f"sessionid={session}".encode()))
    return result


def session_of(client, user) -> str:
    client.force_login(user)
    return client.cookies["sessionid"].value


def test_an_anonymous_socket_is_refused():
    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/events/", headers=headers())
        connected, code = await communicator.connect()
        assert not connected and code == 4401

    async_to_sync(scenario)()


def test_a_socket_from_a_foreign_origin_is_refused(client, admin_user):
    session = session_of(client, admin_user)

    async def scenario():
        communicator = WebsocketCommunicator(
            application, "/ws/events/", headers=headers(origin="http://evil.example", session=session)
        )
        connected, _ = await communicator.connect()
        assert not connected

    async_to_sync(scenario)()


def test_a_logged_in_socket_receives_its_own_events_and_not_others(client, admin_user, django_user_model):
    other = django_user_model.objects.create_user("bob", password="bob-password-1")
    session = session_of(client, admin_user)

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/events/", headers=headers(session=session))
        connected, _ = await communicator.connect()
        assert connected
        await sync_to_async(publish)(group_name("user", other.pk), {"kind": "not-yours"})
        await sync_to_async(publish)(group_name("user", admin_user.pk), {"kind": "hello", "n": 1})
        assert await communicator.receive_json_from(timeout=5) == {"kind": "hello", "n": 1}
        assert await communicator.receive_nothing(timeout=0.5)
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_group_names_are_valid_for_the_channel_layer():
    assert group_name("run", 12) == "run.12"
    assert group_name("scan", "a/b c") == "scan.a_b_c"


def test_websocket_through_the_real_server():
    """daphne, the session cookie from a real login, and an event from the server's own process."""
    with running_server(ENTERPRISE_ADMIN_TOKEN="socket-test-token-1", REFACT_INPROCESS_WORKER="true") as server:
        with httpx.Client(base_url=server.url) as http:
            login = http.get("/login/")
            csrf = login.cookies["csrftoken"]
            response = http.post(
                "/login/",
                data={"username": "admin", "password": "socket-test-token-1", "csrfmiddlewaretoken": csrf},
                headers={"Referer": server.url},
            )
            assert response.status_code == 302
            session = http.cookies["sessionid"]

        async def scenario():
            url = f"ws://127.0.0.1:{server.port}/ws/events/"
            async with websockets.connect(
                url,
                origin=server.url.replace("127.0.0.1", "localhost"),
                additional_headers={"Cookie": f"sessionid={session}"},
            ) as socket:
                await socket.ping()
            with pytest.raises(websockets.exceptions.InvalidStatus):
                async with websockets.connect(
                    url, origin="http://evil.example", additional_headers={"Cookie": f"sessionid={session}"}
                ):
                    pass
            with pytest.raises(websockets.exceptions.InvalidStatus):
                async with websockets.connect(url, origin=server.url):
                    pass

        asyncio.run(scenario())
