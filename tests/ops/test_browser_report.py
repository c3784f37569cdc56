"""A job's report in a real browser (Debian's Chromium, as tests/ops/test_browser.py drives it): a colleague opens
the share link of a finished `meeting-notes` job, clicks a citation, and the cited turn of the transcript is
brought into view and highlighted, with no script on the page; on a phone too. A revoked, expired or forged
link is a 404; what a model writes stays text in the DOM. Screenshots of the report (desktop and phone) and
of the admin's job page are taken too: into docs/screenshots/ (the README shows them) when SR_UPDATE_SCREENSHOTS=1,
else into a temporary folder, so that a test run leaves the tracked files as they were.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.utils import timezone

from accounts.models import User
from analysis.engine.transcripts import normalize_transcript
from analysis.engine.turns import parse_turns
from emulator.server import faults
from jobs.models import Job
from jobs.sharing import share_path
from tests.conftest import ROOT, client_for, transcript, work_burst
from tests.ops.test_browser import PASSWORD, chromium_page, watch  # noqa: F401  (the fixture)
from tests.security.test_report_hostile_output import HOSTILE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("builtin_profiles")]

SCREENSHOTS = (ROOT / "docs" / "screenshots" if os.environ.get("SR_UPDATE_SCREENSHOTS") == "1"
               else Path(tempfile.gettempdir()) / "scriptripper-screenshots")
PHONE = {"width": 390, "height": 844}
TARGET_BACKGROUND = "rgb(255, 243, 191)"  # report.css: --target
MARK_BACKGROUND = "rgb(255, 232, 163)"  # report.css: --mark

# Whether an element of the transcript panel is inside the window and inside the panel's own scroll box.
IN_VIEW = """el => {
  const r = el.getBoundingClientRect(), p = el.closest('aside').getBoundingClientRect();
  return r.top >= Math.max(0, p.top) - 1 && r.bottom <= Math.min(window.innerHeight, p.bottom) + 1 && r.height > 0;
}"""


def cited_turns(meeting: str) -> list:
    """Two turns worth citing: one near the start and one far down, which only a jump brings into view."""
    turns = [turn for turn in parse_turns(normalize_transcript(meeting)) if len(turn.text.split()) >= 10
             and "{" not in turn.text]
    return [turns[1], turns[int(len(turns) * 0.85)]]


def action_items(turns) -> dict:
    """The action items a model could find, each citing a turn in its own first words (checked like any)."""
    tasks = ["Send the minutes of the kick-off meeting to everyone", "Draft the remote control's functional design"]
    return {"action_items": [
        {"task": task, "owner": turn.speaker, "due": "next meeting",
         "citations": [{"turn": turn.index, "quote": " ".join(turn.text.split()[:6])}]}
        for task, turn in zip(tasks, turns)]}


def submit(client, **body) -> str:
    response = client.post("/api/v1/jobs/analyze", {"provider": "openai", "model": "gpt-4o-mini", **body}, format="json")
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


def share(client, job_id: str) -> str:
    response = client.post(f"/api/v1/jobs/{job_id}/share")
    assert response.status_code == 201, response.content
    return response.json()["url"]


def on_server(live_server, url: str) -> str:
    return live_server.url + urlparse(url).path


def screenshot(page, name: str, **options) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), **options)


def test_a_colleague_follows_a_citation_to_its_turn(live_server, emulator, request):
    alice = User.objects.create_user("alice")
    alice_client = client_for(alice)
    meeting = transcript("TS3010a.vtt")
    early, far = cited_turns(meeting)
    emulator.add_faults([faults.reply(json.dumps(action_items([early, far])), "openai",
                                      match="List every action item (a task someone")])
    job_id = submit(alice_client, transcript=meeting, profile="meeting-notes")
    work_burst()
    document = alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert document["status"] == "finished" and document["result"]["metadata"]["tasks"]["action_items"][
        "citations_rejected"] == 0
    url = on_server(live_server, share(alice_client, job_id))
    User.objects.create_superuser("root", "root@example.com", PASSWORD)

    # No database access from here on: Playwright's sync API runs an event loop in this thread.
    page = request.getfixturevalue("chromium_page")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(url)
    assert page.locator("h1").inner_text() == "Meeting notes"
    assert page.locator("script").count() == 0  # it works without any script: there is none
    sections = page.locator("section.task").evaluate_all("s => s.map(x => x.dataset.task)")
    assert sections == ["summary", "key_points", "decisions", "action_items", "open_questions"]

    # The far turn is out of sight until its citation is followed.
    turn = page.locator(f"#turn-{far.index}")
    assert not turn.evaluate(IN_VIEW)
    citation = page.locator(f'section[data-task="action_items"] a.cite[href="#turn-{far.index}"]')
    citation.click()
    page.wait_for_function(f"location.hash === '#turn-{far.index}'")
    page.wait_for_function(f"({IN_VIEW})(document.getElementById('turn-{far.index}'))")
    assert turn.evaluate("el => el.matches(':target')")
    assert turn.evaluate("el => getComputedStyle(el).backgroundColor") == TARGET_BACKGROUND
    mark = turn.locator("mark.quote")
    assert mark.inner_text().split()[:6] == far.text.split()[:6]
    assert mark.evaluate("el => getComputedStyle(el).backgroundColor") == MARK_BACKGROUND
    screenshot(page, "report-desktop")

    # From the keyboard: focus the other citation, press Enter.
    other = page.locator(f'section[data-task="action_items"] a.cite[href="#turn-{early.index}"]')
    other.focus()
    page.keyboard.press("Enter")
    page.wait_for_function(f"location.hash === '#turn-{early.index}'")
    assert page.locator(f"#turn-{early.index}").evaluate(IN_VIEW)

    # On paper: one column, the transcript after the answers, not a sticky panel.
    page.emulate_media(media="print")
    assert page.locator("aside.transcript").evaluate("el => getComputedStyle(el).position") == "static"
    assert page.locator("main.report").evaluate("el => getComputedStyle(el).display") == "block"
    page.emulate_media(media="screen")
    assert not dialogs

    # On a phone: one column that fits the width; the transcript below the answers, reached by the same link.
    phone = page.context.browser.new_page(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    outside, failed = [], []
    watch(phone, live_server, outside, failed)
    phone.goto(url)
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(phone, "report-phone")
    phone_turn = phone.locator(f"#turn-{far.index}")
    assert not phone_turn.evaluate(IN_VIEW)
    phone.locator(f'section[data-task="action_items"] a.cite[href="#turn-{far.index}"]').tap()
    phone.wait_for_function(f"({IN_VIEW})(document.getElementById('turn-{far.index}'))")
    assert phone_turn.evaluate("el => getComputedStyle(el).backgroundColor") == TARGET_BACKGROUND
    phone.close()
    assert not outside and not failed, (outside, failed)

    # Staff read the same job in the admin: a compact page, tasks folded, a link to the report.
    page.goto(f"{live_server.url}/admin/login/?next=/admin/jobs/job/{job_id}/change/")
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"**/admin/jobs/job/{job_id}/change/")
    assert page.evaluate("document.documentElement.scrollHeight") < 2500  # was 7,530 px: a field a row
    page.locator("details#task-action_items > summary").click()
    answer = page.locator("details#task-action_items .sr-answer")
    assert [th.lower() for th in answer.locator("table th").all_inner_texts()] == ["task", "owner", "due", "sources"]
    assert "sr-task/1" not in page.content()
    screenshot(page, "admin-job", full_page=True)
    page.get_by_role("link", name="View report").click()
    page.wait_for_url(f"**/admin/jobs/job/{job_id}/report/")
    assert page.locator("h1").inner_text() == "Meeting notes"


def test_revoked_expired_and_forged_links_are_404_and_model_output_stays_text(live_server, emulator, request):
    alice, bob = User.objects.create_user("alice"), User.objects.create_user("bob")
    alice_client, bob_client = client_for(alice), client_for(bob)
    emulator.add_faults([faults.reply("\n\n".join(HOSTILE), "openai", match="Write it up")])
    hostile = submit(alice_client, transcript="Alice: We ship on Friday.\nBob: I will write the notes.",
                     tasks={"notes": "Write it up"})
    bobs = submit(bob_client, transcript="Bob: My own meeting.", tasks={"summary": "Sum up"})
    work_burst()
    assert alice_client.post(f"/api/v1/jobs/{bobs}/share").status_code == 404  # not hers to share
    # Links that open nothing: revoked, expired, signed for another user's job.
    revoked = on_server(live_server, share(alice_client, hostile))
    assert alice_client.delete(f"/api/v1/jobs/{hostile}/share").status_code == 204
    current = on_server(live_server, share(alice_client, hostile))
    job = Job.objects.get(id=hostile)
    expired = live_server.url + share_path(job_id=job.id, nonce=job.share_nonce,
                                           expires_at=timezone.now() - timedelta(minutes=1))
    forged = live_server.url + share_path(job_id=bobs, nonce=job.share_nonce, expires_at=job.share_expires_at)

    # No database access from here on: Playwright's sync API runs an event loop in this thread.
    page = request.getfixturevalue("chromium_page")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(current)
    title = page.title()
    # What the model wrote is on the page as text, and nothing of it became an element that acts.
    answer = page.locator('section[data-task="notes"] .answer')
    assert "<script>document.title = 'pwned'</script>" in answer.inner_text()
    assert page.locator("script, iframe, img, form, input, style, details, section[data-task] svg").count() == 0
    assert page.locator('a[href^="javascript" i], a[href^="data" i]').count() == 0
    acting = page.evaluate("""() => [...document.querySelectorAll('*')].flatMap(el =>
        [...el.attributes].filter(a => a.name.startsWith('on')).map(a => el.tagName + ' ' + a.name))""")
    assert acting == []
    answer.get_by_text("click").first.click()  # "[click](javascript:...)" is text: clicking it does nothing
    assert page.title() == title and "pwned" not in title and not dialogs
    assert page.evaluate("typeof window.pwned") == "undefined"

    # A page of its own for the 404s: the fixture's page counts every error status as a failure.
    other = page.context.browser.new_page()
    for url in (revoked, expired, forged):
        response = other.goto(url)
        assert response.status == 404, url
        assert "This report is not available" in other.locator("h1").inner_text()
        assert "Write it up" not in other.content() and "My own meeting" not in other.content()
    other.close()
