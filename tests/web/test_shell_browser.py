"""The UI shell in a real browser: log in, walk the navigation, log out."""

from __future__ import annotations

import pytest

from tests.support.browser import browser_page, chromium_available, screenshot
from tests.support.server import running_server

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not chromium_available(), reason="Debian's chromium is not installed (make browser)"),
]
TOKEN = "browser-token-123"


def test_log_in_walk_the_navigation_and_log_out():
    with running_server(ENTERPRISE_ADMIN_TOKEN=TOKEN, REFACT_INPROCESS_WORKER="true") as server, browser_page() as page:
        page.goto(f"{server.url}/")
        assert "/login/" in page.url
        screenshot(page, "login")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "not-the-password")
        page.click("button[type=submit]")
        assert page.locator(".notice.error").is_visible()
        page.fill("#id_password", TOKEN)
        page.press("#id_password", "Enter")
        page.wait_for_url(f"{server.url}/")
        assert page.locator("h1", has_text="Overview").is_visible()
        screenshot(page, "overview")
        for label in ("Model Hosting", "Projects", "Finetune", "Users", "Settings", "Stats"):
            page.click(f"nav.sidebar >> text={label}")
            page.wait_for_load_state()
            assert page.locator(".topbar h1").inner_text() == label
            assert page.locator("nav.sidebar a.active").inner_text() == label
        page.click("text=Log out")
        page.wait_for_url(f"{server.url}/login/")
