"""In a real browser: an operator logs into the admin and reads a finished job's results, and the
Swagger UI at /api/docs/ renders the job endpoints from assets the app serves itself (offline).

Playwright for Python drives the system Chromium (Debian's `chromium` package; .ci/run installs it):
test tools cannot download browsers of their own here. Skipped, saying why, where there is none.
"""

from __future__ import annotations

import os
import shutil
from urllib.parse import urlparse

import pytest

from accounts.models import User
from analysis.runner import TaskSpec
from jobs.services import JobRequest, job_create
from tests.conftest import transcript, work_burst

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
PASSWORD = "a-long-admin-password-1"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def screenshot(page, name: str) -> None:
    """BROWSER_SCREENSHOTS=DIR keeps what the browser showed, to look at."""
    directory = os.environ.get("BROWSER_SCREENSHOTS")
    if directory:
        page.screenshot(path=os.path.join(directory, f"{name}.png"), full_page=True)


@pytest.fixture
def chromium_page(live_server):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium package (apt-get install -y chromium "
                    f"chromium-driver) or set CHROMIUM_PATH")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -r requirements/dev.txt)")
    local = urlparse(live_server.url).netloc
    outside: list[str] = []
    failed: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()

        # Offline for real: anything not served by the app itself is refused (and noted).
        def only_local(route):
            if urlparse(route.request.url).netloc == local or route.request.url.startswith("data:"):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", only_local)
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.on("response", lambda response: failed.append(f"{response.status} {response.url}")
                if response.status >= 400 else None)
        page.set_default_timeout(15_000)
        yield page
        browser.close()
    assert not outside, f"the page asked for resources outside the app: {outside}"
    assert not failed, f"requests failed: {failed}"


def test_operator_reads_results_in_the_admin_and_the_api_docs(live_server, emulator, request):
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    alice = User.objects.create_user("alice")
    job = job_create(owner=alice, request=JobRequest(
        provider="openai", model="gpt-4o-mini", transcript=transcript("TS3010a.txt"),
        tasks=[TaskSpec(name="summary", prompt="Provide a brief summary"),
               TaskSpec(name="key_points", prompt="Extract key points")]))
    work_burst()
    job.refresh_from_db()
    assert job.status == "finished"
    outputs = dict(job.tasks.values_list("name", "output"))
    job_id = str(job.id)

    page = request.getfixturevalue("chromium_page")

    # Log in as staff, like an operator.
    page.goto(f"{live_server.url}/admin/login/?next=/admin/jobs/job/")
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/jobs/job/")
    row = page.locator("#result_list tbody tr").filter(has_text=job_id[:8])
    assert row.count() == 1
    cells = row.inner_text()
    assert "alice" in cells and "2/2" in cells and "finished" in cells.lower() and "gpt-4o-mini" in cells

    # Open the job and read its task results.
    row.get_by_role("link", name=job_id[:8]).click()
    page.wait_for_url(f"**/admin/jobs/job/{job_id}/change/")
    body = page.locator("#content").inner_text()
    assert "Provide a brief summary" in body and "Extract key points" in body
    for output in outputs.values():
        assert output.strip().splitlines()[0] in body
    screenshot(page, "admin-job")

    # The API docs: Swagger UI renders the job endpoints, from assets served by the app.
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".opblock-summary-path")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    normalized = {path.replace("\u200b", "").rstrip("/") for path in paths}
    for endpoint in ("/api/v1/jobs/analyze", "/api/v1/jobs/{job_id}", "/api/v1/jobs", "/api/v1/queues"):
        assert endpoint in normalized, (endpoint, sorted(normalized))
    assert page.locator(".swagger-ui .info .title").inner_text().startswith("ScriptRipper API")
    screenshot(page, "api-docs")


def test_swagger_assets_are_served_by_the_app(client):
    """Without a browser: the Swagger UI page points at the sidecar's files, and whitenoise serves them."""
    import re

    page = client.get("/api/docs/").content.decode()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    assert any("swagger-ui-bundle" in asset for asset in assets), assets
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        content = b"".join(response.streaming_content) if response.streaming else response.content
        assert len(content) > (1000 if asset.endswith((".js", ".css")) else 100), asset
