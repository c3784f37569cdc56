"""In a real browser: an operator logs into the admin and reads a finished job's results, and the
Swagger UI at /api/docs/ renders the job endpoints from assets the app serves itself (offline).

Playwright for Python drives the system Chromium (Debian's `chromium` package; .ci/run installs it):
test tools cannot download browsers of their own here. Skipped, saying why, where there is none.
"""

from __future__ import annotations

import os
import shutil
from io import StringIO
from urllib.parse import urlparse

import pytest
from django.core.management import call_command

from accounts.models import User
from analysis.engine.planning import TaskSpec
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
    outside: list[str] = []
    failed: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        # 1,400 px: a laptop's browser window, where the job list used to be cramped.
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        watch(page, live_server, outside, failed)
        yield page
        browser.close()
    assert not outside, f"the page asked for resources outside the app: {outside}"
    assert not failed, f"requests failed: {failed}"


def watch(page, live_server, outside: list[str], failed: list[str]) -> None:
    """Offline for real: anything not served by the app itself is refused and noted in `outside`; a request
    that fails or answers an error is noted in `failed`."""
    local = urlparse(live_server.url).netloc

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

    # Open the job and read its task results: each task is a section that folds; open them.
    row.get_by_role("link", name=job_id[:8]).click()
    page.wait_for_url(f"**/admin/jobs/job/{job_id}/change/")
    for summary in page.locator("details.sr-task > summary").all():
        summary.click()
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


def demo_operator() -> tuple[str, str]:
    """The demo operator exactly as scripts/run.sh makes it: createtoken ... --login-password."""
    out = StringIO()
    call_command("createtoken", "demo", "--plan", "pro", "--staff", "--name", "run.sh", "--replace", "--login-password",
                 stdout=out)
    login = next(line for line in out.getvalue().splitlines() if line.startswith("Admin login:"))
    username, password = login.removeprefix("Admin login: ").split()[0:3:2]
    return username, password


def test_demo_operator_logs_in_and_reads_the_charts(live_server, emulator, operators_group, request):
    username, password = demo_operator()
    demo = User.objects.get(username=username)
    for provider, model in (("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"), ("openai", "gpt-4o-mini")):
        job_create(owner=demo, request=JobRequest(
            provider=provider, model=model, transcript=transcript("TS3010a.txt"), reuse_results=False,
            tasks=[TaskSpec(name="summary", prompt=f"Provide a brief summary ({provider})")]))
    work_burst()
    waiting = job_create(owner=demo, request=JobRequest(provider="openai", model="gpt-4o-mini",
                                                        transcript="A: still queued",
                                                        tasks=[TaskSpec(name="summary", prompt="Sum up")]))

    page = request.getfixturevalue("chromium_page")
    page.goto(f"{live_server.url}/admin/")
    page.wait_for_url("**/admin/login/**")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    assert "have permission" not in page.locator("#content").inner_text()
    page.get_by_role("link", name="Charts").click()
    page.wait_for_url("**/admin/jobs/job/charts/")

    day = page.locator('#sr-day + .sr-charts')
    jobs = day.locator('svg[data-chart="jobs"]')
    assert jobs.get_attribute("data-total") == "4"
    bars = jobs.locator("rect.bar")
    assert {bars.nth(i).get_attribute("data-series") for i in range(bars.count())} == {"finished", "queued"}
    spend = day.locator('svg[data-chart="spend"] rect.bar')
    assert {spend.nth(i).get_attribute("data-series") for i in range(spend.count())} == {
        "openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"}
    assert all(float(spend.nth(i).get_attribute("data-value")) > 0 for i in range(spend.count()))
    assert day.locator('svg[data-chart="wait"] circle.point').count() >= 2  # median and p95 of the hour
    # Drawn, not only present: the bars have a size on the screen.
    box = bars.first.bounding_box()
    assert box and box["height"] > 0 and box["width"] > 0
    assert page.locator(f'#sr-queue-depth tr[data-queue="{waiting.queue}"]').get_attribute("data-queued") == "1"
    screenshot(page, "admin-charts")

    # The job list at 1,400 px: every column fits without a horizontal scrollbar, one line a row.
    page.goto(f"{live_server.url}/admin/jobs/job/")
    screenshot(page, "admin-job-list")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400
    heights = page.locator("#result_list tbody tr").evaluate_all("rows => rows.map(r => r.offsetHeight)")
    assert heights and max(heights) < 2 * min(heights) + 1 and max(heights) <= 40, heights


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
