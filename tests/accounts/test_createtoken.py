from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from accounts.models import ApiToken, User

pytestmark = pytest.mark.django_db


def createtoken(*args: str) -> str:
    out = StringIO()
    call_command("createtoken", *args, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def test_createtoken_creates_user_and_prints_a_working_token_last():
    token = createtoken("alice", "--plan", "pro")
    alice = User.objects.get(username="alice")
    assert alice.plan == "pro"
    assert not alice.has_usable_password()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/jobs/00000000-0000-0000-0000-000000000000").status_code == 404
    # Only the digest is stored.
    assert not ApiToken.objects.filter(digest=token).exists()


def test_createtoken_updates_an_existing_user_and_adds_a_token():
    first = createtoken("carol")
    second = createtoken("carol", "--plan", "pro", "--staff", "--monthly-budget", "12.50")
    carol = User.objects.get(username="carol")
    assert first != second
    assert (carol.plan, carol.is_staff, carol.monthly_budget) == ("pro", True, Decimal("12.50"))
    assert carol.api_tokens.count() == 2


def test_createtoken_rejects_a_bad_plan():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("createtoken", "dave", "--plan", "platinum", stdout=StringIO(), stderr=StringIO())


def run_sh_createtoken_args() -> list[str]:
    """The createtoken arguments scripts/run.sh passes, read from the script itself."""
    import re
    import shlex

    from tests.conftest import ROOT

    line = re.search(r"manage\.py createtoken (.*)\)$", (ROOT / "scripts" / "run.sh").read_text(), re.M).group(1)
    return [arg for arg in shlex.split(line) if arg != "--login-password"]


def test_every_start_of_run_sh_leaves_one_active_demo_token():
    # Four starts of scripts/run.sh used to leave four never-expiring "run.sh" tokens for demo.
    tokens = [createtoken(*run_sh_createtoken_args()) for _ in range(4)]
    demo = User.objects.get(username="demo")
    active = [token for token in demo.api_tokens.all() if token.is_active]
    assert len(active) == 1 and active[0].name == "run.sh"
    for secret, works in zip(tokens, (False, False, False, True)):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        assert (client.get("/api/v1/account").status_code == 200) is works


def test_replace_leaves_the_users_other_tokens_alone():
    other = createtoken("dana", "--name", "laptop")
    createtoken("dana", "--name", "ci", "--replace")
    createtoken("dana", "--name", "ci", "--replace")
    dana = User.objects.get(username="dana")
    assert sorted(t.name for t in dana.api_tokens.all() if t.is_active) == ["ci", "laptop"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {other}")
    assert client.get("/api/v1/account").status_code == 200
