"""The Projects and Sources pages in a real browser against the real server and its worker."""

from __future__ import annotations

import pytest

from tests.support.browser import browser_page, chromium_available, log_in, screenshot
from tests.support.server import running_server

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not chromium_available(), reason="Debian's chromium is not installed (make browser)"),
]
TOKEN = "browser-token-123"


def test_new_project_upload_scan_and_filter(tmp_path):
    first = tmp_path / "main.py"
    first.write_text("def main():\n    return 1\n")
    second = tmp_path / "app.js"
    second.write_text("export const app = () => 1;\n")
    with running_server(ENTERPRISE_ADMIN_TOKEN=TOKEN, REFACT_INPROCESS_WORKER="true") as server, browser_page() as page:
        log_in(page, server.url, TOKEN)
        page.goto(f"{server.url}/projects/")
        assert page.locator("text=No projects yet").is_visible()
        page.fill("#project-name", "browser-demo")
        page.press("#project-name", "Enter")
        page.wait_for_selector("text=Sources of browser-demo")

        for path in (first, second):
            page.set_input_files("#upload-file", str(path))
            page.click("#upload-form button[type=submit]")
            page.wait_for_selector(f"#sources td >> text={path.name}")
        screenshot(page, "projects-sources")

        page.click("text=Run 'git pull', scan files")
        page.wait_for_selector("text=Last scan: 2 files, 1 accepted.", timeout=60_000)
        assert page.locator("#filter label.check", has_text="py").locator("input").is_checked()
        page.locator("#filter label.check", has_text="js").locator("input").check()
        page.click("text=Save filter")
        page.wait_for_selector("text=File Type Filter saved")
        screenshot(page, "projects-filter")

        page.click("#filter >> text=Full list")
        page.wait_for_selector("text=2 files")
        assert page.locator("td >> text=main.py/main.py").is_visible()
        page.click("text=← Sources")
        href = page.locator("text=Proceed to Fine-tuning").get_attribute("href")
        assert href.startswith("/finetune/?project=")
