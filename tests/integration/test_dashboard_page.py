"""The dashboard page in a real browser against the stack as ``make run`` runs it.

Debian's headless Chromium (``testkit.browser``) opens ``/#token=…`` of a demo
student (``eduknit.demo``'s sample, produced through Kafka) in the Europe/Paris
zone, as a person would after ``make demo``. Checked: the numbers on the page are
the text of ``/realtime``'s (same ``tz``); a POST progress/update shows on the
page within 3 s without a reload; when the API process is killed (the
supervisor restarts it) the page says it is reconnecting and recovers by
itself, and pushes work again afterwards; the statistics period is chosen by
keyboard; an admin token opens another student's page with ``?studentId=``; a
refused token goes back to the sign-in form and is forgotten.

With ``EDUKNIT_SCREENSHOT=path.png`` (``make screenshot``) it also saves the page
at 1280 px (``path.png``) and 375 px (``path-375.png``) wide.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from eduknit.demo import produce
from infra.settings import Settings
from testkit.browser import json_texts, launch, page_summary, summary_texts
from testkit.harness import FaultStack

pytestmark = pytest.mark.integration

STUDENT = "student-0001"
ZONE = "Europe/Paris"
PUSH_LIMIT = 3.0  # seconds from a POST to the page showing it (the bound)
WATCH_STATES = """() => {
  window.seenStates = [];
  const node = document.querySelector('[data-testid="live-status"]');
  new MutationObserver(() => window.seenStates.push(node.dataset.state))
    .observe(node, { attributes: true, attributeFilter: ["data-state"] });
  window.notReloaded = true;
}"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    running = FaultStack(Path(tmp_path_factory.mktemp("page")))
    with running:
        settings = Settings(KAFKA_BOOTSTRAP_SERVERS=running.bootstrap)  # type: ignore[call-arg]
        _, newest = produce(settings, students=20, courses=10, days=60, seed=7)
        deadline = time.monotonic() + 120
        while not any(
            item["eventId"] == newest[STUDENT]
            for item in running.get("/api/dashboard/realtime", STUDENT).json()["recentActivity"]
        ):
            assert time.monotonic() < deadline, "the demo sample was not applied"
            time.sleep(0.5)
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


def open_page(browser: Any, stack: FaultStack, width: int, errors: list[str]) -> Page:
    context = browser.new_context(viewport={"width": width, "height": 900}, timezone_id=ZONE)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{stack.base_url}/#token={stack.token(STUDENT, ttl=7200)}")
    page.wait_for_selector('[data-testid="live-status"][data-state="live"]', timeout=15_000)
    page.wait_for_selector('[data-testid="day"]', timeout=15_000)
    return page


@pytest.fixture(scope="module")
def page(browser: Any, stack: FaultStack) -> Iterator[Page]:
    errors: list[str] = []
    opened = open_page(browser, stack, 1280, errors)
    opened.evaluate(WATCH_STATES)
    yield opened
    assert not errors, f"errors in the page: {errors}"
    opened.context.close()


def realtime_text(stack: FaultStack) -> str:
    response = stack.get("/api/dashboard/realtime", STUDENT, tz=ZONE)
    assert response.status_code == 200, response.text
    return response.text


def wait_page_equals_realtime(page: Page, stack: FaultStack, timeout: float) -> float:
    """Wait until the page shows /realtime's numbers; return the seconds it took."""
    started = time.monotonic()
    while True:
        expected = summary_texts(realtime_text(stack))
        shown = page_summary(page)
        if shown == expected:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"page {shown} != /realtime {expected}"
        time.sleep(0.05)


def post_lesson(stack: FaultStack, lesson: str) -> httpx.Response:
    body = json_texts(realtime_text(stack))
    course = next(c for c in body["courses"] if c["status"] == "active")["courseId"]
    return httpx.post(
        f"{stack.base_url}/api/dashboard/progress/update",
        headers={"Authorization": f"Bearer {stack.token(STUDENT)}"},
        json={"courseId": course, "lessonId": lesson, "timeSpent": 5, "completed": True},
        timeout=30,
    )


def test_the_page_shows_what_realtime_says(page: Page, stack: FaultStack, browser: Any) -> None:
    wait_page_equals_realtime(page, stack, timeout=5)
    body = json_texts(realtime_text(stack))
    for course in body["courses"]:
        card = page.get_by_test_id(f"course-{course['courseId']}")
        assert card.get_by_test_id("course-progress").inner_text() == course["progress"]
    assert page.get_by_test_id("weekly-activity").get_by_test_id("day").count() == 7
    recent = page.get_by_test_id("recent-activity").locator("li")
    assert recent.count() == len(body["recentActivity"]) > 0
    assert page.url == f"{stack.base_url}/", "the token stays out of the address bar"
    board = stack.get("/api/leaderboard", STUDENT, period="week", limit="10", tz=ZONE).json()
    deadline = time.monotonic() + 10  # the panel reads it on its own after sign-in
    while page.get_by_test_id("leaderboard-entry").count() != len(board["entries"]):
        assert time.monotonic() < deadline, "the leaderboard panel shows /api/leaderboard"
        page.wait_for_timeout(100)
    shown_rank = page.get_by_test_id("my-rank").inner_text()
    assert shown_rank == ("–" if board["me"]["rank"] is None else str(board["me"]["rank"]))
    target = os.environ.get("EDUKNIT_SCREENSHOT")
    if target:
        save_screenshots(page, browser, stack, Path(target))


def save_screenshots(page: Page, browser: Any, stack: FaultStack, target: Path) -> None:
    """The page at 1280 px and at 375 px (``make screenshot``; the README shows them)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(500)  # the statistics view's answer
    page.screenshot(path=str(target), full_page=True)
    errors: list[str] = []
    narrow = open_page(browser, stack, 375, errors)
    narrow.wait_for_timeout(500)
    narrow_path = target.with_name(f"{target.stem}-375{target.suffix}")
    narrow.screenshot(path=str(narrow_path), full_page=True)
    narrow.context.close()
    assert not errors, errors


def test_an_admin_opens_another_students_dashboard(browser: Any, stack: FaultStack) -> None:
    other = "student-0002"
    context = browser.new_context(timezone_id=ZONE)
    admin = context.new_page()
    admin.goto(f"{stack.base_url}/?studentId={other}#token={stack.token('teacher', 'admin')}")
    admin.wait_for_selector('[data-testid="live-status"][data-state="live"]', timeout=15_000)
    headers = {"Authorization": f"Bearer {stack.token('teacher', 'admin')}"}
    expected = httpx.get(f"{stack.base_url}/api/dashboard/realtime",
                         params={"studentId": other, "tz": ZONE}, headers=headers)  # fmt: skip
    deadline = time.monotonic() + 5
    while page_summary(admin) != summary_texts(expected.text):
        assert time.monotonic() < deadline, (page_summary(admin), expected.text[:300])
        time.sleep(0.05)
    assert other in admin.locator("#title").inner_text()
    context.close()


def test_a_refused_token_goes_back_to_sign_in(browser: Any, stack: FaultStack) -> None:
    context = browser.new_context()
    refused = context.new_page()
    refused.goto(f"{stack.base_url}/#token=not-a-token")
    refused.wait_for_selector("#sign-in:not([hidden])", timeout=15_000)
    assert "refused" in refused.locator("#sign-in-error").inner_text()
    assert refused.evaluate("sessionStorage.length") == 0
    context.close()


def test_the_statistics_period_changes_by_keyboard(page: Page) -> None:
    page.get_by_label("90 days").focus()
    page.keyboard.press("ArrowRight")  # radio buttons: the arrow keys choose
    assert page.get_by_label("365 days").is_checked()
    bars = page.locator("#daily-chart svg g")
    page.wait_for_function("() => document.querySelectorAll('#daily-chart svg g').length === 365")
    assert bars.count() == 365
    page.get_by_label("30 days", exact=True).check()
    page.wait_for_function("() => document.querySelectorAll('#daily-chart svg g').length === 30")


def test_a_post_shows_on_the_page_without_a_reload(page: Page, stack: FaultStack) -> None:
    before = page.get_by_test_id("total-points").inner_text()
    started = time.monotonic()
    response = post_lesson(stack, "lesson-browser-1")
    assert response.status_code == 200, response.text
    while page.get_by_test_id("total-points").inner_text() == before:
        assert time.monotonic() - started < PUSH_LIMIT, "the POST did not show within 3 s"
        time.sleep(0.02)
    wait_page_equals_realtime(page, stack, timeout=1)
    assert page.evaluate("window.notReloaded") is True


def test_the_page_reconnects_by_itself_after_the_api_restarts(
    page: Page, stack: FaultStack
) -> None:
    stack.kill_worker(signal.SIGKILL)  # the worker+API process; the supervisor restarts it
    page.wait_for_selector('[data-testid="live-status"][data-state="live"]', timeout=60_000)
    states = page.evaluate("window.seenStates")
    assert "reconnecting" in states, states
    assert page.evaluate("window.notReloaded") is True
    wait_page_equals_realtime(page, stack, timeout=5)
    before = page.get_by_test_id("total-points").inner_text()
    started = time.monotonic()
    response = post_lesson(stack, "lesson-browser-2")
    assert response.status_code == 200, response.text
    while page.get_by_test_id("total-points").inner_text() == before:
        assert time.monotonic() - started < PUSH_LIMIT, "no push after the restart"
        time.sleep(0.02)
