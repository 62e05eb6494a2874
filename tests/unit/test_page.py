"""The dashboard page's files as the API serves them (docs/live-dashboard.md), without a browser.

The page itself runs in a real browser in ``tests/integration/test_dashboard_page.py``;
here: ``GET /`` and ``/static/`` answer with the page's headers, every module the
page imports is served, and no file asks another host for anything (the page works
offline).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.routes.page import STATIC_DIR
from infra.settings import Settings
from tests.unit.test_api_http import SECRET

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
FILES = sorted(path for path in STATIC_DIR.rglob("*") if path.is_file())
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # a name, not a request
TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript",
         ".svg": "image/svg+xml"}  # fmt: skip


@pytest.fixture(scope="module")
def http() -> TestClient:
    app = create_app(Settings(EDUKNIT_JWT_SECRET=SECRET), None, None)  # type: ignore[arg-type]
    return TestClient(app)


def test_the_page_is_served_with_its_headers(http: TestClient) -> None:
    response = http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert response.headers["referrer-policy"] == "no-referrer"
    assert '<main id="main"' in response.text
    assert "/" not in {path for path in http.get("/openapi.json").json()["paths"]}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(STATIC_DIR)))
def test_every_file_is_served_and_asks_no_other_host(http: TestClient, path: Path) -> None:
    response = http.get(f"/static/{path.relative_to(STATIC_DIR)}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(TYPES[path.suffix])
    assert "content-security-policy" in response.headers
    text = path.read_text().replace(SVG_NAMESPACE, "")
    assert not re.search(r"\b(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), path.name


def test_every_imported_module_exists() -> None:
    for path in STATIC_DIR.rglob("*.js"):
        for module in re.findall(r'^import .* from "\./([^"]+)";$', path.read_text(), re.M):
            assert (path.parent / module).is_file(), f"{path.name} imports a missing {module}"


def test_the_spec_test_ids_are_on_the_page() -> None:
    """The contract's data-testids: fixed ones in the HTML, per-course and per-day ones in JS."""
    html = (STATIC_DIR / "index.html").read_text()
    for testid in ("total-points", "level", "current-streak", "longest-streak",
                   "enrolled-courses", "average-progress", "live-status", "weekly-activity",
                   "recent-activity"):  # fmt: skip
        assert html.count(f'data-testid="{testid}"') == 1, testid
    scripts = "".join(path.read_text() for path in STATIC_DIR.rglob("*.js"))
    assert '"data-testid": `course-${course.courseId}`' in scripts
    assert '"data-testid": "course-progress"' in scripts
    assert 'barTestid: "day"' in scripts
