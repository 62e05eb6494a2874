"""Headless Chromium for the page's tests and screenshots (Playwright, Debian's browser).

Playwright's own browser download cannot run here, so the browser is Debian's
``chromium`` (``make browser`` installs it), driven by the PyPI ``playwright``
package. ``launch`` starts it with the flags a container without a display or a
network needs; ``summary_texts`` reads the dashboard's numbers the way a test
compares them with ``/realtime``: as the text of the JSON numbers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
SUMMARY_IDS = {
    "total-points": "totalPoints", "level": "level", "current-streak": "currentStreak",
    "longest-streak": "longestStreak", "enrolled-courses": "enrolledCourses",
    "average-progress": "averageProgress",
}  # fmt: skip


def launch(playwright: Any) -> Any:
    """Debian's Chromium, headless; fails with the command that installs it when missing."""
    if not CHROMIUM.exists():
        hint = "make browser" if shutil.which("apt-get") else "install Debian's chromium"
        raise RuntimeError(f"{CHROMIUM} is missing: run `{hint}`")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)


def json_texts(body: str) -> Any:
    """A JSON document with every number left as the text the API wrote (40.0, not 40)."""
    return json.loads(body, parse_float=str, parse_int=str)


def summary_texts(realtime_body: str) -> dict[str, str]:
    """The page's summary numbers as ``/realtime`` wrote them, by ``data-testid``."""
    summary = json_texts(realtime_body)["summary"]
    return {testid: summary[field] for testid, field in SUMMARY_IDS.items()}


def page_summary(page: Any) -> dict[str, str]:
    """The text of the page's summary numbers, by ``data-testid``."""
    return {testid: page.get_by_test_id(testid).inner_text().strip() for testid in SUMMARY_IDS}
