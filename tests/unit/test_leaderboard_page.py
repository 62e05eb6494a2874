"""The leaderboard panel (``api/static/js/leaderboard.js``) in Debian's headless Chromium.

The real app (``create_app``) runs on loopback on the embedded ClickHouse with
the learners of ``test_leaderboard_http`` (a database of its own), and serves
``api/static`` and a host page that mounts the panel as the dashboard page
will: an empty ``<section aria-labelledby>``, the page's authenticated
``fetchJson``/``putJson`` and the browser's zone. Checked: the table and my
rank and percentile are the API's, periods chosen by keyboard, the course
selector, the visibility switch with a name (stored, shown, and shown as
text, never as markup), and no horizontal scrolling at 375 px. Skipped when
Chromium is not installed (``apt-get install chromium``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from clickhouse_connect.driver.client import Client
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.main import create_app
from infra.broker import free_port
from infra.settings import Settings
from infra.tokens import make_token
from streams.sink import ClickHouseSink
from tests.unit.test_api_http import SECRET, FakePublisher
from tests.unit.test_leaderboard_http import NOW, db  # noqa: F401 (fixture)

CHROMIUM = Path("/usr/bin/chromium")
STATIC = Path(__file__).resolve().parents[2] / "api" / "static"
HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>panel</title></head>
<body><main><section id="board" aria-labelledby="board-title"></section></main>
<script type="module">
import { mountLeaderboard } from "/static/js/leaderboard.js";
const token = new URLSearchParams(location.hash.slice(1)).get("token");
async function call(method, path, body) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers,
    body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json();
  if (!response.ok) throw new Error(JSON.stringify(data.detail));
  return data;
}
window.board = mountLeaderboard(document.getElementById("board"), {
  fetchJson: (path) => call("GET", path),
  putJson: (path, body) => call("PUT", path, body),
  tz: Intl.DateTimeFormat().resolvedOptions().timeZone,
});
</script></body></html>"""

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no Chromium: apt-get install chromium"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning"),
]


@pytest.fixture
def server(db: Client) -> Iterator[str]:  # noqa: F811
    # bob's courses, for the course selector (the dashboard's /realtime lists them)
    state_rows = [["bob", "c1", 1, None, 2, [], None, None, 0.0, NOW.timestamp(), 0.0, 1]]
    ClickHouseSink(db).write({"student_courses": state_rows})
    settings = Settings(EDUKNIT_JWT_SECRET=SECRET)  # type: ignore[call-arg]
    app = create_app(settings, db, FakePublisher(db, mode="ignore"), clock=lambda: NOW)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_api_route("/panel", lambda: HTMLResponse(HOST_PAGE), methods=["GET"])
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not running.started:
        assert time.monotonic() < deadline, "the app did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        running.should_exit = True
        thread.join(10)


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        yield chromium
        chromium.close()


def entries(page: Any) -> list[str]:
    cells = page.locator('[data-testid="leaderboard-entry"]')
    return [" | ".join(row.locator("td").all_inner_texts()) for row in cells.all()]


def wait_entries(page: Any, expected: list[str]) -> None:
    deadline = time.monotonic() + 10
    while entries(page) != expected:
        assert time.monotonic() < deadline, f"{entries(page)} != {expected}"
        time.sleep(0.05)


def test_the_panel_shows_the_api_and_sets_visibility(server: str, browser: Any) -> None:
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 375, "height": 900}, timezone_id="UTC")
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server}/panel#token={make_token(SECRET, 'bob')}")

    panel = page.locator('[data-testid="leaderboard"]')
    assert panel.get_attribute("aria-labelledby") == "board-title"
    assert page.locator("#board-title").inner_text() == "Leaderboard"
    wait_entries(page, ["1 | Learner 1 | 28", "2 | Learner 2 (you) | 10"])  # this week
    assert page.get_by_test_id("my-rank").inner_text() == "2"
    assert page.get_by_test_id("my-percentile").inner_text() == "0.0"

    # All time, by keyboard: the period radios move with the arrow keys
    page.get_by_label("This week").focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.get_by_label("All time").is_checked()
    wait_entries(page, ["1 | Learner 1 | 28", "2 | Learner 2 (you) | 20", "3 | Learner 3 | 10"])
    assert page.get_by_test_id("my-percentile").inner_text() == "33.3"  # 1 of 3 has fewer

    # One course: bob and ann both have 20 in c1, listed by id
    page.get_by_label("Course").select_option("c1")
    wait_entries(page, ["1 | Learner 1 | 20", "1 | Learner 1 (you) | 20"])
    assert page.get_by_test_id("my-rank").inner_text() == "1"

    # Visible under a name; the switch is a checkbox with the role of a switch
    switch = page.get_by_test_id("leaderboard-visible")
    assert switch.get_attribute("role") == "switch" and not switch.is_checked()
    switch.check()
    page.get_by_label("Name to show").fill("<b>Bobby</b>")
    page.get_by_role("button", name="Save").click()
    wait_entries(page, ["1 | Learner 1 | 20", "1 | <b>Bobby</b> (you) | 20"])  # text, not markup
    assert page.locator("table b").count() == 0
    bearer = {"Authorization": f"Bearer {make_token(SECRET, 'bob')}"}
    stored = httpx.get(f"{server}/api/leaderboard/me", headers=bearer)
    assert stored.json() == {"visible": True, "name": "<b>Bobby</b>"}

    # hidden again: the name is kept but not shown
    switch.uncheck()
    page.get_by_role("button", name="Save").click()
    wait_entries(page, ["1 | Learner 1 | 20", "1 | Learner 1 (you) | 20"])
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert not errors, errors
    context.close()
