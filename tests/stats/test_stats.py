"""Telemetry endpoints, the Stats page and its CSV export, scoped per team."""

from __future__ import annotations

import csv
import io

import pytest

from stats.models import CompletionServed, TelemetryRecord
from stats.services import completion_served_record

ROBOT_HUMAN = {
    "teletype": "robot_human",
    "ts_start": 1700000000,
    "ts_end": 1700000300,
    "enduser_client_version": "refact-lsp 0.10",
    "records": [
        {"model": "tiny-test", "file_extension": "py", "robot_characters": 120, "human_characters": 80},
        {"model": "tiny-test", "file_extension": "rs", "robot_characters": 30, "human_characters": 10},
    ],
}


def bearer(key: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


@pytest.fixture
def usage(alice, bob):
    for latency in (100, 200, 300):
        completion_served_record(
            user_id=alice.pk,
            team_id=alice.team_id,
            model="tiny-test",
            kind="completion",
            status=200,
            latency_ms=latency,
        )
    completion_served_record(
        user_id=bob.pk, team_id=bob.team_id, model="other-model", kind="chat", status=200, latency_ms=50
    )


def test_telemetry_basic_stores_per_user_team_model_language(client, alice, api_key_for):
    key = api_key_for(alice)
    response = client.post("/stats/telemetry-basic", data=ROBOT_HUMAN, content_type="application/json", **bearer(key))
    assert response.status_code == 200, response.content
    assert response.json() == {"retcode": "OK", "stored": 2}
    rows = {row.language: row for row in TelemetryRecord.objects.all()}
    assert set(rows) == {"Python", "Rust"}
    assert rows["Python"].username == "alice" and rows["Python"].team_name == "team-a"
    assert rows["Python"].accepted_characters == 120 and rows["Python"].model == "tiny-test"

    own = client.get("/stats/rh-stats", **bearer(key)).json()
    assert own["robot_characters"] == 150 and own["human_characters"] == 90
    assert own["robot_share"] == round(150 / 240, 4)


def test_telemetry_snippets_and_bad_bodies(client, alice, api_key_for):
    key = api_key_for(alice)
    snippet = {"teletype": "snippets", "records": [{"model": "tiny-test", "language": "Go", "corrected_code": "x"}]}
    response = client.post("/stats/telemetry-snippets", data=snippet, content_type="application/json", **bearer(key))
    assert response.status_code == 200
    assert TelemetryRecord.objects.get().kind == "snippet"
    bad = client.post(
        "/stats/telemetry-basic", data={"records": "nope"}, content_type="application/json", **bearer(key)
    )
    assert bad.status_code == 400
    assert "records" in bad.json()
    assert client.post("/stats/telemetry-basic", data=ROBOT_HUMAN, content_type="application/json").status_code == 401


def test_stats_page_empty_state(admin_client):
    response = admin_client.get("/stats/")
    assert response.status_code == 200
    assert b"No usage yet" in response.content


def test_stats_page_charts_and_breakdowns(admin_client, usage):
    response = admin_client.get("/stats/?days=7")
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count("<svg") == 3
    assert "Completions served" in page and "Median latency" in page
    assert "alice" in page and "bob" in page and "tiny-test" in page


def test_team_members_see_only_their_team(client, alice, usage):
    client.force_login(alice)
    page = client.get("/stats/").content.decode()
    assert "alice" in page and "bob" not in page and "other-model" not in page


def test_csv_export(admin_client, usage):
    response = admin_client.get("/stats/export.csv?days=30")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    by_user = {row["key"]: row for row in rows if row["dimension"] == "user"}
    assert by_user["alice"]["completions"] == "3" and by_user["alice"]["latency_p50_ms"] == "200"
    assert len([row for row in rows if row["dimension"] == "day"]) == 30
    assert CompletionServed.objects.count() == 4
