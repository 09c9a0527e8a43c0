from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

PAGES = ["/", "/hosting/", "/projects/", "/finetune/", "/users/", "/settings/", "/stats/"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_need_a_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.parametrize("path", PAGES)
def test_every_page_of_the_shell_renders_with_the_navigation(admin_client, path):
    response = admin_client.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    for label in ("Model Hosting", "Projects", "Finetune", "Users", "Settings", "Stats"):
        assert f">{label}</a>" in html
    assert 'aria-current="page"' in html or path == "/"


def test_login_and_logout(client, admin_user):
    page = client.get("/login/")
    assert page.status_code == 200 and b"csrfmiddlewaretoken" in page.content
    bad = client.post("/login/", {"username": "admin", "password": "wrong"})
    assert bad.status_code == 200 and b"Please enter a correct username and password" in bad.content
    good = client.post("/login/", {"username": "admin", "password": "admin-password-1"})
    assert good.status_code == 302 and good["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_admin_console_is_served(admin_client):
    assert admin_client.get("/admin/").status_code == 200
    assert admin_client.get("/admin/hosting/workernode/").status_code == 200


def test_security_headers(client):
    response = client.get("/login/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_api_schema_is_published(admin_client):
    response = admin_client.get("/api/schema/")
    assert response.status_code == 200
    assert b"openapi" in response.content
