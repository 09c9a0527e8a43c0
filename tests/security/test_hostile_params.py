"""Inputs the API fuzzer found crashing views: each now gets a clear 4xx and nothing half-written."""

from __future__ import annotations

import json

import pytest

from stats.models import TelemetryRecord


def bearer(key: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


@pytest.mark.parametrize(
    "path",
    ["/api/accounts/keys/?user=%00", "/api/projects/?x%00=1", "/refact-caps?project=a%00b", "/api/accounts/keys/?%00"],
)
def test_a_nul_character_in_the_query_is_refused(client, alice, api_key_for, path):
    response = client.get(path, **bearer(api_key_for(alice)))
    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/accounts/keys/?user=99999999999999999999999", "user"),
        ("/api/accounts/keys/?user=abc", "user"),
        ("/api/accounts/keys/?user=-1", "user"),
    ],
)
def test_integer_query_parameters_are_validated(client, alice, api_key_for, path, field):
    response = client.get(path, **bearer(api_key_for(alice)))
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field


def test_run_log_after_is_validated(admin_client, db):
    from finetune.models import FinetuneRun
    from projects.models import Project

    run = FinetuneRun.objects.create(project=Project.objects.create(name="p"), base_model="tiny-test", name="r")
    for after in ("abc", str(10**30)):
        response = admin_client.get(f"/api/finetune/runs/{run.pk}/log/?after={after}")
        assert response.status_code == 400, response.content
        assert response.json()["field"] == "after"
    assert admin_client.get(f"/api/finetune/runs/{run.pk}/log/?after=5").status_code == 200


def test_telemetry_with_nul_and_lone_surrogates_is_stored_clean(client, alice, api_key_for):
    # What a plugin bug or an attacker may send: NUL characters and a lone surrogate, in keys and values.
    body = '{"teletype": "robot_human", "records": [{"model": "m\\u0000x", "\\ud800k": "\\udc00v", "n": 1e300}]}'
    response = client.post(
        "/stats/telemetry-basic", data=body, content_type="application/json", **bearer(api_key_for(alice))
    )
    assert response.status_code == 200, response.content
    row = TelemetryRecord.objects.get()
    assert row.model == "mx"
    assert "\x00" not in json.dumps(row.data)
