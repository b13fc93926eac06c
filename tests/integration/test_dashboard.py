"""The operator dashboard in a real headless Chromium against a real coordinator over HTTP:
sign in with the admin token, see the market, ban a provider, rule on a dispute; a wrong token
is refused, and what the API returns is shown as text, never run as markup."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from gpumarket.protocol import JobSpec, JobState, ResultReport, Role
from gpumarket.sdk import AdminClient, Client, ProviderClient, register_wallet
from tests.conftest import ADMIN_TOKEN, sqlite_url
from tests.helpers import RTX4090, gpus, heartbeat
from tests.integration.processes import CoordinatorProcess

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def browser() -> Iterator[Any]:
    """Chromium driven by Playwright (installed by `make test`; skipped elsewhere unless
    GPUMARKET_REQUIRE_BROWSER is set, as CI sets it)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package")
    if not shutil.which(CHROMIUM):
        _missing(CHROMIUM)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _missing(what: str) -> None:
    if os.environ.get("GPUMARKET_REQUIRE_BROWSER"):
        pytest.fail(f"{what} is missing (make test installs it)")
    pytest.skip(f"{what} is missing (make test installs it)")


@pytest.fixture
def market(tmp_path: Path) -> Iterator[CoordinatorProcess]:
    with CoordinatorProcess.start(
        sqlite_url(tmp_path), tmp_path / "data", admin_token=ADMIN_TOKEN
    ) as proc:
        yield proc


def _until(check: Callable[[], Any], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return value


def _disputed_job(url: str) -> tuple[str, str]:
    """A provider that ran a job, and the job, challenged by its developer with a reason that
    looks like markup."""
    dev = Client(url, register_wallet(url, Account.create(), Role.DEVELOPER).api_key)
    prov_cred = register_wallet(url, Account.create(), Role.PROVIDER, region="eu")
    prov = ProviderClient(url, prov_cred.api_key)
    prov.heartbeat(heartbeat(gpus(RTX4090, 1), {"RTX4090": "1.00"}, region="eu"))
    spec = {"image": "python:3.12-slim", "max_price_per_hour": "2", "resources": {"gpu": "1"}}
    job = dev.submit(JobSpec.model_validate(spec))
    _until(lambda: prov.poll(wait=1))
    prov.started(job.id)
    prov.report_result(job.id, ResultReport(exit_code=0, usage_seconds=30.0))
    dev.challenge(job.id, "<img src=x onerror=alert(1)> numbers are wrong")
    return prov_cred.account_id, job.id


def test_an_operator_signs_in_bans_and_rules(market: CoordinatorProcess, browser: Any) -> None:
    provider_id, job_id = _disputed_job(market.url)
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.accept("mining on the side")))
    page.goto(f"{market.url}/dashboard")

    page.fill("#token", "not-the-token")
    page.click("#sign-in button")
    page.wait_for_selector("#error:not([hidden])")
    assert "the coordinator refused this token" in page.inner_text("#error")
    assert page.is_visible("#sign-in") and not page.is_visible("#market")

    page.fill("#token", ADMIN_TOKEN)
    page.click("#sign-in button")
    row = page.wait_for_selector(f"#providers tr[data-id='{provider_id}']")
    assert not page.is_visible("#sign-in") and page.is_visible("#sign-out")
    assert "1x NVIDIA GeForce RTX 4090" in row.inner_text()
    assert "providers online" in page.inner_text("#cards")
    assert "DISPUTED 1" in page.inner_text("#states")
    dispute = page.wait_for_selector(f"#disputes tr[data-id='{job_id}']")
    # the challenger's reason is text on the page, not an element that ran
    assert "<img src=x onerror=alert(1)> numbers are wrong" in dispute.inner_text()
    assert page.query_selector("#disputes img") is None and dialogs == []

    row.query_selector("button").click()  # ban: the prompt asks why
    _until(
        lambda: (
            "banned"
            in (page.get_attribute(f"#providers tr[data-id='{provider_id}']", "class") or "")
        )
    )
    assert dialogs == [f"Why ban {provider_id}?"]
    admin = AdminClient(market.url, ADMIN_TOKEN)
    banned = httpx.get(
        f"{market.url}/v1/admin/providers/{provider_id}",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ).json()
    assert banned["banned"] is True and banned["ban_reason"] == "mining on the side"

    page.click(f"#disputes tr[data-id='{job_id}'] button:text('provider right')")
    page.wait_for_selector("#no-disputes:not([hidden])")
    assert admin.stats().jobs_by_state[JobState.SETTLED.value] == 1

    page.click("#sign-out")
    assert page.is_visible("#sign-in") and not page.is_visible("#market")
    assert page.evaluate("sessionStorage.length") == 0


def test_the_page_is_served_with_a_strict_content_security_policy(
    market: CoordinatorProcess,
) -> None:
    page = httpx.get(f"{market.url}/dashboard")
    assert page.status_code == 200 and "<title>gpumarket operator dashboard</title>" in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert (
        httpx.get(f"{market.url}/dashboard/app.js")
        .headers["content-type"]
        .startswith("text/javascript")
    )
    missing = httpx.get(f"{market.url}/dashboard/../coordinator/app.py")
    assert missing.status_code == 404
    assert httpx.get(f"{market.url}/dashboard/settings.py").status_code == 404
