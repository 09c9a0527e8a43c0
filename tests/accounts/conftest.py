from __future__ import annotations

import pytest
from rest_framework.test import APIClient

COMPLETION_MODEL = "qwen2.5/coder/1.5b/base"
OTHER_COMPLETION_MODEL = "starcoder2/3b/base"


@pytest.fixture
def client_for(api_key_for):
    """client_for(user) -> an APIClient authenticating with a new API key of USER."""

    def make(user) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(user)}")
        return client

    return make


@pytest.fixture
def project_a(team_a):
    from projects.models import Project

    return Project.objects.create(name="shop", team=team_a)


@pytest.fixture
def project_b(team_b):
    from projects.models import Project

    return Project.objects.create(name="bank", team=team_b)
