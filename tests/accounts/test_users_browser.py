"""The Users page in a real browser: activate a license in Settings, add a user, copy the key shown once."""

from __future__ import annotations

import httpx
import pytest

from accounts.models import Team
from tests.support.browser import browser_page, chromium_available, log_in, screenshot
from tests.support.licenses import license_token
from tests.support.server import running_server

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.services_only,
    pytest.mark.skipif(not chromium_available(), reason="Debian's chromium is not installed (make browser)"),
]
TOKEN = "users-browser-token-1"


def test_activate_add_a_user_and_copy_the_key():
    Team.objects.create(name="Backend")
    with running_server(ENTERPRISE_ADMIN_TOKEN=TOKEN) as server, browser_page() as page:
        log_in(page, server.url, TOKEN)
        page.goto(f"{server.url}/users/")
        assert page.locator("#edition h2").inner_text() == "Self-hosted edition"
        screenshot(page, "users-self-hosted")

        page.goto(f"{server.url}/settings/")
        page.fill("#license-token", license_token(customer="Browser Co", seats=3, days=10))
        page.click("#license >> text=Activate")
        page.wait_for_load_state()
        assert "Licensed to Browser Co" in page.locator("#license").inner_text()
        assert page.locator(".notice.warning", has_text="The license expires in 9 days").is_visible()
        screenshot(page, "settings-license")

        page.goto(f"{server.url}/users/")
        page.fill("#add-username", "kim")
        page.select_option("#add-team", label="Backend")
        page.click("#add-user >> text=Add user")
        page.wait_for_load_state()
        dialog = page.locator("#new-key")
        assert dialog.is_visible()
        key = page.input_value("#new-key-value")
        assert key.startswith("rfx_")
        # Keyboard: the Copy button has the focus; Enter copies (or selects the key without clipboard access).
        page.keyboard.press("Enter")
        page.wait_for_function("document.querySelector('[data-copy-status]').textContent.length > 0")
        screenshot(page, "users-key-shown-once")
        page.click("text=I have copied it")
        assert not dialog.is_visible()
        response = httpx.get(f"{server.url}/api/accounts/me/", headers={"Authorization": f"Bearer {key}"})
        assert response.json()["team"] == "Backend"
