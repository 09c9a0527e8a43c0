"""The whole user journey in a real browser, against the real server (daphne) and a real worker process.

Log in → activate a license → add a user and read the key shown once → create a project → add a local
git repository → scan it (per-type counts, a rejected file and its reason) → fine-tune the tiny model
and watch the loss chart and ETA bar move without reloading → the checkpoints with the best one marked
→ publish that LoRA in Model Hosting → the plugin capabilities list it, and it answers a completion.

Screenshots of every page go to test-artifacts/screenshots/NN-name.png.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import httpx
import pytest

from accounts.models import Team
from hosting.models import WorkerNode
from tests.finetune.conftest import FAST, stdlib_corpus
from tests.projects.conftest import git
from tests.support.browser import browser_page, chromium_available, screenshot
from tests.support.licenses import license_token
from tests.support.server import running_server, running_worker, wait_until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # the server and the worker are separate processes: they need Redis for the broker and the channel layer
    pytest.mark.services_only,
    pytest.mark.skipif(not chromium_available(), reason="Debian's chromium is not installed (make browser)"),
]
TOKEN = "journey-browser-token-1"
# Slow enough that the page sees the chart grow while the run works, fast enough for a CPU test.
CORPUS = 5  # Python modules: 3 to train on, 2 to test on (each test pass reads every test file)
PARAMETERS = {**FAST, "train_steps": 20, "batch_size": 4}
DIGITS = "TABLE = [\n" + "".join(f"    {n * 7919 % 100000}, {n * 104729 % 100000},\n" for n in range(60)) + "]\n"


def make_repository(root: Path) -> Path:
    """A real git repository: real Python modules, one JavaScript file and one file of numbers (rejected)."""
    repository = root / "upstream"
    (repository / "lib").mkdir(parents=True)
    git("init", "--quiet", "--initial-branch=main", cwd=repository)
    for source in stdlib_corpus(CORPUS):
        shutil.copyfile(source, repository / "lib" / source.name)
    (repository / "web.js").write_text("export function greet(name) {\n  return `hello ${name}`;\n}\n")
    (repository / "lib" / "table.py").write_text(DIGITS)
    git("add", "-A", cwd=repository)
    git("commit", "--quiet", "-m", "corpus", cwd=repository)
    return repository


class Clock:
    """Seconds per phase, written to the test's output: where the journey spends its time."""

    def __init__(self) -> None:
        self.started = self.last = time.monotonic()
        self.phases: list[str] = []

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.phases.append(f"{name} {now - self.last:.1f}s")
        self.last = now

    def report(self) -> float:
        total = time.monotonic() - self.started
        sys.stdout.write(f"journey: {', '.join(self.phases)}; total {total:.1f}s\n")
        return total


def shot(page, number: int, name: str) -> None:
    screenshot(page, f"screenshots/{number:02d}-{name}")


def chart_points(page) -> int:
    return int(page.locator("#ft-chart").get_attribute("data-points") or 0)


def progress(page) -> int:
    return int(page.locator(".ft-eta").get_attribute("aria-valuenow") or 0)


def test_the_whole_journey(tmp_path, tiny_model, broker):
    clock = Clock()
    Team.objects.create(name="Backend")
    repository = make_repository(tmp_path)
    environment = {"ENTERPRISE_ADMIN_TOKEN": TOKEN, "REFACT_GIT_ALLOW_LOCAL": "true"}
    with running_server(**environment) as server, running_worker(**environment):
        # before the browser: Playwright's event loop in this thread would forbid the ORM
        wait_until(WorkerNode.objects.exists, timeout=60, message="the worker to register its devices")
        with browser_page() as page:
            journey(page, server.url, repository, clock)
    assert clock.report() < 240


def journey(page, base: str, repository: Path, clock: Clock) -> None:
    clock.lap("start")
    page.goto(f"{base}/login/")
    shot(page, 1, "login")
    page.fill("#id_username", "admin")
    page.fill("#id_password", TOKEN)
    page.press("#id_password", "Enter")
    page.wait_for_url(f"{base}/")

    # Model Hosting: host the tiny model on the CPU first; its server loads while the journey goes on.
    page.goto(f"{base}/hosting/")
    assert page.locator("#devices .badge", has_text="online").is_visible()
    page.click("#add-model-open")
    page.check("#add-model input[value=tiny-test]")
    page.select_option("#add-model select[name=backend]", "transformers")
    page.select_option("#add-model select[name=gpus]", "0")
    page.click("#add-model button[type=submit]")
    page.wait_for_selector("text=tiny-test assigned to")
    shot(page, 2, "hosting-add-model")

    # Enterprise: a license, then a user whose key is shown once.
    page.goto(f"{base}/settings/")
    page.fill("#license-token", license_token(customer="Journey Co", seats=5, days=365))
    page.click("#license >> text=Activate")
    page.wait_for_selector("#license >> text=Licensed to Journey Co")
    shot(page, 3, "settings-license")
    page.goto(f"{base}/users/")
    page.fill("#add-username", "kim")
    page.select_option("#add-team", label="Backend")
    page.click("#add-user >> text=Add user")
    page.wait_for_selector("#new-key")
    key = page.input_value("#new-key-value")
    assert key.startswith("rfx_")
    shot(page, 4, "users-key-shown-once")
    page.click("text=I have copied it")

    clock.lap("license and user")

    # A project with a local git repository, scanned.
    page.goto(f"{base}/projects/")
    page.fill("#project-name", "journey")
    page.press("#project-name", "Enter")
    page.wait_for_selector("text=Sources of journey")
    page.fill("#git-url", repository.as_uri())
    page.fill("#git-branch", "main")
    page.click("text=Add repository")
    page.wait_for_selector("#sources td >> text=upstream")
    page.click("#scan button[type=submit]")
    page.wait_for_selector(f"text=Last scan: {CORPUS + 2} files, {CORPUS} accepted.", timeout=60_000)
    filter_text = page.locator("#filter").inner_text()
    assert f"{CORPUS + 1} files" in filter_text and "1 file" in filter_text, filter_text
    assert page.locator("#filter label.check", has_text="py").locator("input").is_checked()
    assert page.locator("table.reasons", has_text="Lots of digits").is_visible()
    shot(page, 5, "project-scanned")
    page.click("table.reasons >> text=Lots of digits")
    page.wait_for_selector("td >> text=upstream/lib/table.py")
    assert "Lots of digits" in page.locator("tr", has_text="upstream/lib/table.py").inner_text()
    assert "1 of 1 · 1 file" in page.locator(".pager").inner_text()  # not "1 files"
    shot(page, 6, "project-rejected-file")

    clock.lap("project and scan")

    # A fine-tune of the tiny model, watched live.
    page.goto(f"{base}/finetune/")
    page.select_option("select[name=model]", "tiny-test")
    page.click("text=Start Fine-tuning…")
    page.fill("input[name=name]", "journey-run")
    page.click("summary >> text=Advanced settings")
    for name, value in PARAMETERS.items():
        page.fill(f"#p-{name}", str(value))
    shot(page, 7, "finetune-launch")
    page.click("button >> text=Start")
    page.wait_for_selector("#ft-run")
    page.evaluate("window.journeyMarker = 'no reload'")
    # Polled from here: a wait_for_function string would be eval()ed, which the page's CSP forbids.
    wait_until(lambda: chart_points(page) >= 2, timeout=90, interval=0.25, message="the first points")
    first_points, first_progress = chart_points(page), progress(page)
    wait_until(
        lambda: chart_points(page) > first_points and progress(page) > first_progress,
        timeout=60,
        interval=0.25,
        message="the chart and the ETA bar to move",
    )
    assert page.evaluate("window.journeyMarker") == "no reload", "the page reloaded to show new points"
    assert chart_points(page) > first_points and progress(page) > first_progress
    assert page.is_enabled("[data-action=cancel]") and page.is_disabled("[data-action=delete]")
    shot(page, 8, "finetune-live")
    clock.lap("fine-tune until the chart moved")
    page.wait_for_selector("[data-field=status] >> text=completed", timeout=120_000)
    # The buttons follow the status before the page reloads for the evaluation report.
    marker, cancel_disabled, delete_disabled = page.evaluate(
        "[window.journeyMarker, document.querySelector('[data-action=cancel]').disabled,"
        " document.querySelector('[data-action=delete]').disabled]"
    )
    assert (marker, cancel_disabled, delete_disabled) == ("no reload", True, False)
    page.wait_for_selector("#ft-evaluation table")  # the page reloads once for the server-rendered report
    page.click("#t-checkpoints")
    best = page.locator("#ft-checkpoints tr.best")
    assert best.count() == 1 and "best" in best.inner_text()
    best_name = best.get_attribute("data-name")
    assert page.locator("#ft-checkpoints tr[data-name]").count() >= 2
    shot(page, 9, "finetune-checkpoints")
    # Delete asks first (a data-confirm handled by our script: the CSP forbids inline handlers); No keeps it.
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.click("[data-action=delete]")
    assert questions == ["Delete journey-run and its checkpoints?"]
    assert page.locator("#ft-checkpoints tr.best").count() == 1

    clock.lap("fine-tune to the end")

    # Model Hosting: publish the best checkpoint as a LoRA of the hosted tiny model.
    page.goto(f"{base}/hosting/")
    row = page.locator("tr.finetune-row[data-model=tiny-test]")
    row.locator("select[name=mode]").select_option("specific")
    row.locator("select[name=choice]").select_option(f"journey-run:{best_name}")
    row.locator("text=Apply").click()
    published = f"tiny-test:journey-run:{best_name}"
    page.wait_for_selector(f"tr.finetune-row code >> text={published}")

    # The plugin sees it, with the user's own key; the worker restarts the model's server to load the LoRA,
    # and until it is ready a completion answers 503 (Retry-After), which a plugin retries.
    headers = {"Authorization": f"Bearer {key}"}

    def caps_list_the_lora() -> bool:
        caps = httpx.get(f"{base}/refact-caps", headers=headers, timeout=10).json()
        return published in caps["completion"]["models"]

    wait_until(caps_list_the_lora, timeout=90, interval=1, message=f"{published} in the capabilities")
    answers: list[dict] = []

    def the_lora_answers() -> bool:
        body = {"model": published, "prompt": "def add(a, b):\n    ", "max_tokens": 4, "temperature": 0}
        response = httpx.post(f"{base}/v1/completions", headers=headers, json=body, timeout=60)
        if response.status_code == 503:
            return False
        assert response.status_code == 200, response.text
        answers.append(response.json())
        return True

    wait_until(the_lora_answers, timeout=90, interval=1, message=f"{published} to answer")
    assert answers[0]["model"] == published and answers[0]["choices"][0]["text"] is not None
    page.reload()
    page.wait_for_selector("tr[data-model=tiny-test] [data-role=state] >> text=ready")
    shot(page, 10, "hosting-lora")

    # Another tab turns the LoRA off: this one follows without a reload (it polls the assignments).
    other = page.context.new_page()
    other.goto(f"{base}/hosting/")
    other_row = other.locator("tr.finetune-row[data-model=tiny-test]")
    other_row.locator("select[name=mode]").select_option("off")
    other_row.locator("text=Apply").click()
    other.wait_for_selector("tr.finetune-row[data-model=tiny-test] >> text=off: the base model alone")
    other.close()
    page.wait_for_selector("tr.finetune-row[data-model=tiny-test] >> text=off: the base model alone", timeout=15_000)
    assert page.locator(f"tr.finetune-row code >> text={published}").count() == 0
    clock.lap("hosting and plugin")
