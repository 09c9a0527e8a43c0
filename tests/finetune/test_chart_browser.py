"""The run monitor's loss chart in a real browser, at its edges: one point of each curve, and equal losses."""

from __future__ import annotations

import pytest

from finetune.models import FinetuneMetric, FinetuneRun
from projects.models import Project
from tests.support.browser import browser_page, chromium_available, log_in, screenshot
from tests.support.server import running_server

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not chromium_available(), reason="Debian's chromium is not installed (make browser)"),
]
TOKEN = "chart-browser-token-1"


def test_a_single_point_is_drawn_and_close_losses_get_distinct_labels():
    project = Project.objects.create(name="chart")
    single = FinetuneRun.objects.create(name="single", project=project, base_model="tiny-test", total_steps=10)
    FinetuneMetric.objects.create(run=single, step=1, train_loss=2.5, test_loss=2.6)
    close = FinetuneRun.objects.create(name="close", project=project, base_model="tiny-test", total_steps=10)
    for step, loss in enumerate([7.6351, 7.6340, 7.6329]):
        FinetuneMetric.objects.create(run=close, step=step, train_loss=loss)
    with running_server(ENTERPRISE_ADMIN_TOKEN=TOKEN) as server, browser_page() as page:
        log_in(page, server.url, TOKEN)

        page.goto(f"{server.url}/finetune/runs/{single.pk}/")
        page.wait_for_selector("#ft-chart[data-points='2']")
        # one point of a curve is a dot: a polyline through one point would show nothing
        assert page.locator("#ft-chart circle.train").count() == 1
        assert page.locator("#ft-chart circle.test").count() == 1
        screenshot(page, "screenshots/finetune-single-point")

        page.goto(f"{server.url}/finetune/runs/{close.pk}/")
        page.wait_for_selector("#ft-chart[data-points='3']")
        labels = page.locator("#ft-chart text.axis").all_text_contents()[:5]
        assert len(set(labels)) == 5, labels
