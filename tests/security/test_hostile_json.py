"""Malformed and oversized JSON on every endpoint that takes a body: a clean 400 or 413, never a 5xx.

The endpoints come from the OpenAPI schema itself, so a new endpoint is covered the day it is added.
Malformed bodies go through Django as in production; oversized ones through the ASGI application
(the cap sits in front of Django) and through the real server (daphne), where the cap must answer
before the body has been received at all.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator

from tests.security.conftest import bearer
from tests.support.server import running_server

MALFORMED: dict[str, bytes] = {
    "truncated": b'{"name": "x", ',
    "not json": b"name=x&url=y",
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
    "nested objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "invalid utf-8": b'{"name": "\xff\xfe\xfa"}',
    "NaN": b'{"name": NaN, "temperature": NaN}',
    "Infinity": b'{"max_tokens": Infinity, "seats": -Infinity}',
    "a list": b"[]",
    "a string": b'"just a string"',
    "null": b"null",
    "a number": b"1e999999",
}


def json_operations() -> list[tuple[str, str]]:
    """(METHOD, path template) of every operation whose request body is JSON, from the schema."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            content = (operation.get("requestBody") or {}).get("content", {})
            if "application/json" in content:
                operations.append((method.upper(), path))
    return sorted(operations)


@pytest.fixture
def world(db, admin_user, api_key_for, data_dir) -> dict[str, Any]:
    """One of each object an endpoint's path names, all visible to the admin whose key is used."""
    from accounts.models import ApiKey, Team
    from finetune.models import FinetuneRun
    from hosting.services import tiny_model_register
    from projects import services as projects

    team = Team.objects.create(name="team-json")
    key = api_key_for(admin_user)
    project = projects.project_create(name="json", team=team)
    source = projects.source_add_upload(project=project, file_name="a.py", stream=_bytes(b"print(1)\n"))
    run = FinetuneRun.objects.create(project=project, base_model="tiny-test", name="r1")
    tiny_model_register(name="tiny-test", weights=Path("models/tiny-test"), parameters=0)
    values = {
        "id": str(ApiKey.objects.get(user=admin_user).pk),
        "pk": str(team.pk),
        "project_id": str(project.pk),
        "source_id": str(source.pk),
        "run_id": str(run.pk),
        "key_id": "999999",
        "model": "tiny-test",
    }
    return {"key": key, "values": values, "team": team}


def _bytes(data: bytes):
    import io

    return io.BytesIO(data)


def fill(template: str, values: dict[str, str], team_id: int) -> str:
    path = template
    if "/teams/{id}/" in path:
        path = path.replace("{id}", str(team_id))
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, path
    return path


@pytest.mark.parametrize(("method", "template"), json_operations())
def test_malformed_json_is_400_on_every_endpoint(client, world, method, template) -> None:
    path = fill(template, world["values"], world["team"].pk)
    send = getattr(client, method.lower())
    for name, body in MALFORMED.items():
        response = send(path, data=body, content_type="application/json", **bearer(world["key"]))
        assert 400 <= response.status_code < 500, (name, path, response.status_code, response.content[:300])
        assert response["Content-Type"].startswith("application/json"), (name, path)
        # {"detail": ...} or DRF's {field: [messages]}: either way a JSON object that says what is wrong.
        assert isinstance(response.json(), dict) and response.json(), (name, path, response.content[:300])
        # Every one of these bodies is wrong; the only acceptable 404 is an object the path names.
        assert response.status_code in (400, 404, 415), (name, path, response.status_code)


def test_the_schema_lists_the_plugin_and_rest_bodies() -> None:
    operations = json_operations()
    assert ("POST", "/v1/completions") in operations and ("POST", "/api/projects/") in operations
    assert len(operations) >= 20


# --- oversized: the ASGI application --------------------------------------------------------


def asgi_request(path: str, *, body: bytes, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    from refact_site.asgi import application

    async def scenario() -> dict[str, Any]:
        communicator = HttpCommunicator(application, "POST", path, body=body, headers=headers)
        return await communicator.get_response(timeout=10)

    return async_to_sync(scenario)()


@pytest.mark.parametrize(("method", "template"), json_operations())
def test_oversized_bodies_are_413_before_django_reads_them(settings, world, method, template) -> None:
    settings.REFACT_REQUEST_MAX_MB = 1
    path = fill(template, world["values"], world["team"].pk)
    auth = (b"authorization", f"Bearer {world['key']}".encode())
    kind = (b"content-type", b"application/json")
    # A declared length over the cap: refused on the header alone.
    declared = asgi_request(path, body=b"{}", headers=[auth, kind, (b"content-length", str(10**10).encode())])
    # No declared length (as with chunked transfer): refused once the bytes counted pass the cap.
    padding = json.dumps({"prompt": "x" * (1024 * 1024 + 10)}).encode()
    counted = asgi_request(path, body=padding, headers=[auth, kind])
    for response in (declared, counted):
        assert response["status"] == 413, (path, response["status"], response["body"][:200])
        body = json.loads(response["body"])
        assert body == {
            "detail": "the request body is larger than 1 MB (REFACT_REQUEST_MAX_MB)",
            "field": "body",
        }


def test_the_upload_endpoint_has_the_upload_cap_not_the_request_cap(settings, world) -> None:
    settings.REFACT_REQUEST_MAX_MB = 1
    settings.REFACT_UPLOAD_MAX_MB = 2
    path = f"/api/projects/{world['values']['project_id']}/sources/upload/"
    headers = [(b"authorization", f"Bearer {world['key']}".encode())]
    over = asgi_request(path, body=b"", headers=[*headers, (b"content-length", str(3 * 1024 * 1024).encode())])
    assert over["status"] == 413
    assert json.loads(over["body"])["detail"] == "file: the upload is larger than 2 MB (REFACT_UPLOAD_MAX_MB)"
    page = asgi_request(
        f"/projects/{world['values']['project_id']}/sources/upload/",
        body=b"",
        headers=[(b"content-length", str(3 * 1024 * 1024).encode())],
    )
    assert page["status"] == 413 and b"the upload is larger than 2 MB" in page["body"]


# --- oversized: the real server -------------------------------------------------------------


def raw_exchange(port: int, head: bytes, chunks: list[bytes], *, wait: float = 10) -> bytes:
    """Send HEAD and CHUNKS but never finish the body; return what the server answers meanwhile."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as connection:
        connection.sendall(head)
        try:
            for chunk in chunks:
                connection.sendall(chunk)
        except OSError:
            pass  # the server may already have answered and closed: that is the point
        answer = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and b"\r\n\r\n" not in answer:
            try:
                piece = connection.recv(65536)
            except OSError:
                break
            if not piece:
                break
            answer += piece
        try:
            answer += connection.recv(65536)
        except OSError:
            pass
        return answer


@pytest.mark.django_db(transaction=True)
def test_daphne_answers_413_before_the_body_has_arrived() -> None:
    """A declared 10 GB body and an endless chunked one: the answer comes while the client is still
    sending, so the server never stored (or waited for) what is over the cap."""
    with running_server(REFACT_REQUEST_MAX_MB="1", REFACT_UPLOAD_MAX_MB="1") as server:
        declared = raw_exchange(
            server.port,
            b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10737418240\r\n\r\n",
            [b"{" + b" " * 1000],
        )
        assert declared.startswith(b"HTTP/1.1 413"), declared[:300]
        assert b"larger than 1 MB (REFACT_REQUEST_MAX_MB)" in declared

        chunk = b"x" * 65536
        framed = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        chunked = raw_exchange(
            server.port,
            b"POST /api/projects/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            [framed] * 24,  # 1.5 MB, and no terminating chunk: a buffering server would wait forever
        )
        assert chunked.startswith(b"HTTP/1.1 413"), chunked[:300]

        upload = raw_exchange(
            server.port,
            b"POST /api/projects/1/sources/upload/ HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 5000000000\r\n\r\n",
            [b"--x\r\n"],
        )
        assert upload.startswith(b"HTTP/1.1 413"), upload[:300]
        assert b"file: the upload is larger than 1 MB (REFACT_UPLOAD_MAX_MB)" in upload

        # Below the caps the server still answers normally on a fresh connection.
        fine = raw_exchange(
            server.port,
            b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2\r\nConnection: close\r\n\r\n{}",
            [],
        )
        assert fine.startswith(b"HTTP/1.1 401"), fine[:300]


@pytest.mark.django_db(transaction=True)
def test_daphne_leaves_form_bodies_to_the_application() -> None:
    """Twisted's own form parsing is off: it read a whole multipart body into memory (up to the upload
    cap, several copies) and answered one it could not parse with a bare 400 of its own."""
    with running_server() as server:
        unparseable = raw_exchange(
            server.port,
            b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data\r\n"
            b"Content-Length: 2\r\nConnection: close\r\n\r\n{}",
            [],
        )
        # The application's answer (no key), not Twisted's.
        assert unparseable.startswith(b"HTTP/1.1 401"), unparseable[:300]
        assert b"Authentication credentials were not provided" in unparseable


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.django_db(transaction=True)
def test_daphne_hands_large_bodies_over_as_the_application_reads_them(admin_user, api_key_for) -> None:
    """daphne put a whole body in the application's queue at once: a 1 GB upload, even refused
    unauthenticated, was 1 GB of the server's memory. Bodies in a file are now read as consumed."""
    key = api_key_for(admin_user)
    with running_server() as server:
        # A large body arrives whole: the JSON parses, and routing names the model.
        prompt = "x" * 3_000_000
        with httpx.Client(base_url=server.url, timeout=60) as client:
            answer = client.post(
                "/v1/completions",
                json={"model": "nope", "prompt": prompt},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert answer.status_code == 404 and "model 'nope' not found" in answer.text, answer.text[:300]

        before = peak_rss_mb(server.popen.pid)
        size = 300 * 1024 * 1024
        answer = raw_exchange(
            server.port,
            b"POST /api/projects/1/sources/upload/ HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size,
            [b"\0" * (1024 * 1024)] * 300,
            wait=60,
        )
        assert answer.startswith((b"HTTP/1.1 401", b"HTTP/1.1 403")), answer[:300]
        grew = peak_rss_mb(server.popen.pid) - before
        assert grew < 100, f"the server's peak memory grew by {grew:.0f} MB for a refused 300 MB upload"


# --- type confusion: every field of every body ------------------------------------------------

CONFUSING_VALUES: list[Any] = [None, [], {"$gt": ""}, "x" * 5000, -1, 2**63, "NaN", True]


def request_fields(operation: dict[str, Any], components: dict[str, Any]) -> list[str]:
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    return sorted(schema.get("properties", {}))


def json_operations_with_fields() -> list[tuple[str, str, list[str]]]:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    found = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            if "application/json" in (operation.get("requestBody") or {}).get("content", {}):
                found.append((method.upper(), path, request_fields(operation, components)))
    return sorted(found)


@pytest.mark.parametrize(("method", "template", "fields"), json_operations_with_fields())
def test_every_field_of_every_body_survives_type_confusion(client, world, method, template, fields) -> None:
    path = fill(template, world["values"], world["team"].pk)
    send = getattr(client, method.lower())
    assert fields, template
    for field in fields:
        for value in CONFUSING_VALUES:
            body = json.dumps({field: value})
            response = send(path, data=body, content_type="application/json", **bearer(world["key"]))
            # A body that happens to be valid reaches routing: no model is served in this test, a clean 503.
            served_nothing = (
                response.status_code == 503 and path.startswith("/v1/") and response.has_header("Retry-After")
            )
            assert response.status_code < 500 or served_nothing, (path, field, value, response.content[:300])


# --- multipart uploads: malformed envelopes and hostile file names ----------------------------


def multipart(filename: str, data: bytes = b"print(1)\n", boundary: str = "BOUNDARY") -> bytes:
    return (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", "multipart/form-data; boundary=BOUNDARY"),
        (
            b'--BOUNDARY\r\nContent-Disposition: form-data; name="file"; filename="a.py"\r\n\r\nprint(',
            "multipart/form-data; boundary=BOUNDARY",
        ),
        (multipart("a.py"), "multipart/form-data"),  # no boundary
        (multipart("a.py"), "multipart/form-data; boundary="),
        (multipart("a.py"), "multipart/form-data; boundary=" + "B" * 5000),
        (
            b"--BOUNDARY\r\n" + b"X-Header: " + b"h" * 100_000 + b"\r\n\r\n--BOUNDARY--\r\n",
            "multipart/form-data; boundary=BOUNDARY",
        ),
        (multipart("a.py"), "application/json"),
        (multipart("a.py").replace(b'name="file"', b'name="other"'), "multipart/form-data; boundary=BOUNDARY"),
    ],
)
def test_malformed_uploads_are_4xx_and_store_nothing(client, world, body, content_type) -> None:
    from projects.models import Source

    before = Source.objects.count()
    path = f"/api/projects/{world['values']['project_id']}/sources/upload/"
    response = client.generic("POST", path, body, content_type=content_type, **bearer(world["key"]))
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    assert Source.objects.count() == before


@pytest.mark.parametrize(
    "filename",
    [
        "../../../../outside.py",
        "/etc/cron.d/evil.py",
        "..\\..\\evil.py",
        "a/b/../../../c.py",
        "\x00.py",
        "..",
        ".",
        " ",
    ],
)
def test_hostile_upload_names_never_leave_the_upload_directory(client, world, settings, filename) -> None:
    from projects.models import Source

    path = f"/api/projects/{world['values']['project_id']}/sources/upload/"
    before = {p for p in settings.DATA_DIR.parent.rglob("*")}
    response = client.generic(
        "POST", path, multipart(filename), content_type="multipart/form-data; boundary=BOUNDARY", **bearer(world["key"])
    )
    assert response.status_code in (201, 400), (response.status_code, response.content[:300])
    created = {p for p in settings.DATA_DIR.parent.rglob("*")} - before
    assert all(p.resolve().is_relative_to(settings.DATA_DIR.resolve()) for p in created), created
    if response.status_code == 201:
        source = Source.objects.get(pk=response.json()["id"])
        assert "/" not in source.upload_name and source.upload_name not in ("", ".", "..")
