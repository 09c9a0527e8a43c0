"""The scan as a Dramatiq actor on a real worker, with its progress pushed to the project's socket."""

from __future__ import annotations

import io

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from projects import services
from projects.models import Scan
from refact_site.asgi import application
from tests.support.server import wait_until

# services only: the in-memory channel layer does not wake a socket from a worker thread.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services_only]


def headers(session: str) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"localhost"), (b"origin", b"http://localhost"), (b"cookie", f"sessionid={session}".encode())]


def test_scan_runs_on_the_worker_and_pushes_progress(worker, client, admin_user, django_user_model) -> None:
    from accounts.models import Team

    project = services.project_create(name="live")
    services.source_add_upload(project=project, file_name="a.py", stream=io.BytesIO(b"def a():\n    return 1\n"))
    client.force_login(admin_user)
    session = client.cookies["sessionid"].value
    outsider = django_user_model.objects.create_user("mallory", password="mallory-pass-1")
    outsider.team = Team.objects.create(name="other")
    outsider.save()

    async def scenario() -> list[dict]:
        communicator = WebsocketCommunicator(application, f"/ws/projects/{project.pk}/", headers=headers(session))
        connected, _ = await communicator.connect()
        assert connected
        scan = await sync_to_async(services.project_scan_start)(project=project)
        events = []
        while True:
            event = await communicator.receive_json_from(timeout=20)
            events.append(event)
            if event["scan"]["status"] in ("completed", "failed"):
                break
        await communicator.disconnect()
        assert all(event["scan"]["id"] == scan.pk for event in events)
        return events

    events = async_to_sync(scenario)()
    final = events[-1]["scan"]
    assert final["status"] == "completed" and final["progress"] == 100
    assert final["summary"]["accepted"] == 1
    wait_until(lambda: Scan.objects.get(project=project).status == "completed", timeout=5)

    # Another team's user cannot watch this project: refused as not found.
    client.force_login(outsider)
    other_session = client.cookies["sessionid"].value

    async def refused() -> int:
        communicator = WebsocketCommunicator(application, f"/ws/projects/{project.pk}/", headers=headers(other_session))
        connected, code = await communicator.connect()
        assert not connected
        return code

    assert async_to_sync(refused)() == 4404
