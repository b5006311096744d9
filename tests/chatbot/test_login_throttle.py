"""Login throttling on /agent/login/ and /admin/login/ (django-axes), through Django's ASGI handler."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from axes.models import AccessAttempt
from django.test import AsyncClient
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

RIGHT = {"username": "staff", "password": "staff-pass-123"}
WRONG = {"username": "staff", "password": "not-the-password"}


@pytest.fixture(autouse=True)
def _behind_one_proxy(settings):
    """One trusted proxy: each client's address is the one its X-Forwarded-For names (and a fast hasher)."""
    settings.SWITCHBOARD = {**getattr(settings, "SWITCHBOARD", {}), "TRUSTED_PROXY_COUNT": 1}
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class _ClientAt(AsyncClient):
    """An async client whose requests come from ``address`` (X-Forwarded-For, set by the trusted proxy)."""

    def __init__(self, address: str):
        super().__init__()
        self.address = address

    async def post(self, path, data=None, **kwargs):
        return await super().post(path, data, headers={"X-Forwarded-For": self.address}, **kwargs)


def _client_at(address: str) -> AsyncClient:
    return _ClientAt(address)


async def _logged_in(client: AsyncClient) -> bool:
    session = await client.asession()
    return await session.aget("_auth_user_id") is not None


@pytest.mark.parametrize("login_url", ["/agent/login/", "/admin/login/"])
async def test_twelve_wrong_passwords_lock_out_the_right_one(staff_user, login_url):
    """After 12 wrong passwords the right one is refused with 429 and a page saying why and for how long;
    the same user from another address (behind the trusted proxy) still logs in; after the cool-off the
    first address does too."""
    client = _client_at("203.0.113.7")
    for _ in range(12):
        assert (await client.post(login_url, WRONG)).status_code in (200, 429)
    locked = await client.post(login_url, RIGHT)
    assert locked.status_code == 429 and not await _logged_in(client)
    page = locked.content.decode()
    assert "Too many failed logins" in page and "staff" in page and "0:15:00" in page
    elsewhere = _client_at("198.51.100.4")
    assert (await elsewhere.post(login_url, RIGHT)).status_code == 302 and await _logged_in(elsewhere)
    await sync_to_async(AccessAttempt.objects.update)(attempt_time=timezone.now() - timedelta(minutes=16))
    assert (await client.post(login_url, RIGHT)).status_code == 302 and await _logged_in(client)


async def test_a_few_wrong_passwords_then_the_right_one_logs_in(staff_user):
    """Below the limit a typo costs nothing: the right password logs in and the failures are forgotten."""
    client = _client_at("203.0.113.8")
    for _ in range(3):
        assert (await client.post("/agent/login/", WRONG)).status_code == 200
    assert (await client.post("/agent/login/", RIGHT)).status_code == 302 and await _logged_in(client)
    assert not await sync_to_async(AccessAttempt.objects.filter(username="staff", failures_since_start__gt=0).exists)()


async def test_a_forwarded_hop_that_is_no_address_is_counted_without_one(staff_user):
    """A forged X-Forwarded-For that is no address ("unknown"): the failure is still counted, with no
    address (PostgreSQL's inet column would refuse the text), and the login page answers."""
    response = await _client_at("unknown").post("/agent/login/", WRONG)
    assert response.status_code == 200
    attempt = await sync_to_async(AccessAttempt.objects.get)(username="staff")
    assert attempt.ip_address is None and attempt.failures_since_start == 1
