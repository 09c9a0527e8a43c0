"""Schemathesis over our OpenAPI schema, against the real server, as a normal user of team A: no 5xx, ever.

Bounded (a fixed seed, a few examples per operation, a time cap) so it runs in every `make test`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.server import REPO, running_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services_only]

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def fuzz(url: str, key: str, *, checks: str, report: Path) -> subprocess.CompletedProcess:
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{url}/api/schema/",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        checks,
        "--max-examples",
        os.environ.get("REFACT_FUZZ_EXAMPLES", "6"),
        "--seed",
        "20261124",
        "--max-time",
        "100",
        "--request-timeout",
        "20",
        "--no-shrink",
        # Revoking or rotating the fuzzer's own key would turn every later request into a 401.
        "--exclude-name",
        "DELETE /api/accounts/keys/{id}/",
        "--exclude-name",
        "POST /api/accounts/keys/{id}/rotate/",
        # A malformed multipart body is refused by daphne's HTTP layer itself (a bare 400, before Django).
        "--exclude-name",
        "POST /api/projects/{project_id}/sources/upload/",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
    ]
    environment = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.security.fuzz_hooks"}
    return subprocess.run(command, capture_output=True, text=True, timeout=400, cwd=REPO, env=environment, check=False)


def test_no_server_error_and_no_schema_violation_as_a_team_member(alice, api_key_for, tmp_path):
    from projects.services import project_create

    project_create(name="fuzzed", team=alice.team, actor=alice)
    key = api_key_for(alice, name="fuzzer")
    with running_server() as server:
        # The fuzzer must act as alice: a key the server refuses would only ever test the 401 path.
        probe = httpx.get(f"{server.url}/api/projects/", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert probe.status_code == 200, probe.text
        result = fuzz(
            server.url,
            key,
            checks="no_server_error_but_unserved_model,status_code_conformance,content_type_conformance,response_schema_conformance",
            report=tmp_path / "fuzz.xml",
        )
        (REPO / "test-artifacts").mkdir(exist_ok=True)
        (REPO / "test-artifacts" / "api-fuzz.txt").write_text(result.stdout + result.stderr)
        output = result.stdout[-6000:] + result.stderr[-2000:]
        assert result.returncode == 0, output
        assert "No issues found" in output or "passed" in output, output
        # 403s are expected (admin-only operations); a 401-only operation means the key stopped working.
        assert "401 Unauthorized (" not in result.stdout, output
