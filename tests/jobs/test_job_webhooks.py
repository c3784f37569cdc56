"""Job callbacks: Standard Webhooks signatures, URL checks, retries with backoff, the account secret."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook

from jobs.models import WebhookDelivery
from jobs.worker.reconcile import jobs_reconcile
from tests.conftest import work_burst
from tests.jobs.faults import TEXT, task_prompts

pytestmark = pytest.mark.django_db(transaction=True)


class Receiver:
    """A webhook receiver on loopback that answers the statuses it is given, then 204."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/scriptripper"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    settings.WEBHOOK_RETRY_DELAYS = [0, 0]
    r = Receiver()
    yield r
    r.close()


def submit(client, callback_url: str):
    return client.post("/api/v1/jobs/analyze", {
        "transcript": TEXT, "provider": "gemini", "model": "gemini-2.5-flash", "tasks": task_prompts("hook", 1),
        "callback_url": callback_url,
    }, format="json")


def test_final_job_is_posted_signed_with_the_owners_secret(alice_client, alice, receiver):
    job_id = submit(alice_client, receiver.url).json()["job_id"]
    work_burst()
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    secret = alice_client.get("/api/v1/account").json()["webhook_secret"]
    payload = Webhook(secret).verify(body, headers)  # raises if the signature does not verify
    assert payload == alice_client.get(f"/api/v1/jobs/{job_id}").json()
    assert payload["status"] == "finished" and isinstance(payload["result"]["metadata"]["total_cost"], float)
    assert headers["webhook-id"].startswith("msg_") and headers["content-type"] == "application/json"
    delivery = WebhookDelivery.objects.get(job_id=job_id)
    assert delivery.attempts == 1 and delivery.last_status == 204 and delivery.delivered_at is not None


def test_failed_deliveries_are_retried_by_the_reconciler_with_the_same_message(alice_client, receiver):
    receiver.statuses = [500, 503]
    job_id = submit(alice_client, receiver.url).json()["job_id"]
    work_burst()
    delivery = WebhookDelivery.objects.get(job_id=job_id)
    assert delivery.attempts == 1 and delivery.last_status == 500 and delivery.delivered_at is None
    assert delivery.next_attempt_at is not None
    jobs_reconcile()
    jobs_reconcile()
    delivery.refresh_from_db()
    assert delivery.attempts == 3 and delivery.last_status == 204 and delivery.delivered_at is not None
    ids = {headers["webhook-id"] for headers, _ in receiver.received}
    assert len(receiver.received) == 3 and len(ids) == 1  # one message, three attempts: receivers deduplicate


def test_deliveries_give_up_after_the_schedule(alice_client, receiver, settings):
    settings.WEBHOOK_RETRY_DELAYS = [0]
    receiver.statuses = [500, 500, 500]
    job_id = submit(alice_client, receiver.url).json()["job_id"]
    work_burst()
    jobs_reconcile()
    jobs_reconcile()
    delivery = WebhookDelivery.objects.get(job_id=job_id)
    assert delivery.attempts == 2 and delivery.next_attempt_at is None and delivery.delivered_at is None
    assert delivery.last_error


def test_a_signature_made_with_a_rotated_secret_fails_with_the_old_one(alice_client, receiver):
    old = alice_client.get("/api/v1/account").json()["webhook_secret"]
    response = alice_client.post("/api/v1/account/webhook-secret")
    assert response.status_code == 200
    new = response.json()["webhook_secret"]
    assert new != old and new.startswith("whsec_")
    assert alice_client.get("/api/v1/account/").json()["webhook_secret"] == new
    submit(alice_client, receiver.url)
    work_burst()
    headers, body = receiver.received[0]
    Webhook(new).verify(body, headers)
    with pytest.raises(Exception):
        Webhook(old).verify(body, headers)


@pytest.mark.parametrize("url", [
    "ftp://example.com/hook", "http://127.0.0.1:8000/hook", "http://localhost/hook", "http://10.1.2.3/hook",
    "http://169.254.169.254/latest/meta-data", "http://[::1]/hook", "http://192.168.0.10/x", "not a url",
    "http://user:pw@example.com/hook",
])
def test_callback_urls_to_internal_addresses_are_refused(alice_client, url):
    response = submit(alice_client, url)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error" and "callback_url" in error["fields"]


def test_account_shows_the_callers_own_details(alice_client, bob_client, alice, bob, client):
    data = alice_client.get("/api/v1/account").json()
    assert data["username"] == "alice" and data["plan"] == "free" and data["webhook_secret"] == alice.webhook_secret
    assert bob_client.get("/api/v1/account").json()["webhook_secret"] == bob.webhook_secret != alice.webhook_secret
    assert client.get("/api/v1/account").status_code == 401
    assert client.post("/api/v1/account/webhook-secret").status_code == 401
