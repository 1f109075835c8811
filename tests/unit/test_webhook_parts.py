"""The pure parts of webhooks: events and their payload cap, Standard Webhooks signatures, the URL and address
policy, and the backoff."""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from config import Settings
from tasks.errors import WebhookConfigError
from tasks.scope.matcher import Ranges
from tasks.scope.policy import policy
from tasks.webhooks import event, signing
from tasks.webhooks.event import MAX_PAYLOAD_BYTES, EventType
from tasks.webhooks.policy import AddressPolicy, target
from tasks.webhooks.schedule import Backoff

RESULT = {
    "tool": "nmap", "tenant_id": "acme", "run_id": "scan-1", "task_id": "t-1", "status": "ok", "reason": None,
    "findings": [{"host": "192.0.2.1"}], "stats": {"findings": 1}, "stderr_tail": "",
    "artifacts": [{"name": "findings.jsonl", "uri": "file:///x/findings.jsonl"}], "notices": [],
}  # fmt: skip


@pytest.mark.parametrize(
    ("status", "kind"),
    [("ok", "run.succeeded"), ("tool_failed", "run.failed"), ("timed_out", "run.timed_out"),
     ("cancelled", "run.cancelled"), ("a_later_status", "run.failed")],
)  # fmt: skip
def test_each_status_maps_to_its_event_type(status: str, kind: str) -> None:
    assert event.event_type(status).value == kind


def test_a_results_event_carries_it_without_findings_and_with_artifact_uris() -> None:
    found = event.for_result(RESULT, created=1_700_000_000.5)
    body = json.loads(found.body)
    assert body["type"] == "run.succeeded" and body["timestamp"].startswith("2023-11-14T22:13:20")
    assert "findings" not in body["data"] and body["data"]["artifacts"][0]["name"] == "findings.jsonl"
    assert body["data"]["stats"] == {"findings": 1}


def test_an_event_id_is_stable_per_run_and_differs_between_tenants() -> None:
    assert event.for_result(RESULT, 1).id == event.for_result(RESULT, 2).id == event.event_id("acme", "t-1")
    assert event.event_id("rival", "t-1") != event.event_id("acme", "t-1")


def test_a_huge_result_is_cut_to_64_kib_and_says_so() -> None:
    big = {
        **RESULT,
        "stderr_tail": "e" * 50_000,
        "artifacts": [{"name": f"f{i}", "uri": "u" * 200} for i in range(2000)],
    }
    body = event.for_result(big, 1).body
    data = json.loads(body)["data"]
    assert len(body.encode()) <= MAX_PAYLOAD_BYTES
    assert data["truncated"] is True and data["stderr_tail"] == "" and 0 < len(data["artifacts"]) < 2000


def test_a_result_that_fits_is_not_marked_truncated() -> None:
    assert "truncated" not in json.loads(event.for_result(RESULT, 1).body)["data"]


def test_a_cancel_event_names_the_run_and_why() -> None:
    found = event.for_end("t-2", "nmap", "acme", "scan-2", event.CANCELLED_STATUS, "cancelled", 1)
    assert found.type is EventType.CANCELLED
    assert json.loads(found.body)["data"] == {
        "tool": "nmap", "tenant_id": "acme", "run_id": "scan-2", "task_id": "t-2", "status": "cancelled",
        "reason": "cancelled",
    }  # fmt: skip


def test_a_run_that_raised_is_a_failed_event_with_status_error() -> None:
    found = event.for_end("t-3", "nmap", "acme", "scan-3", event.ERROR_STATUS, "DockerUnavailableError: gone", 1)
    assert found.type is EventType.FAILED and json.loads(found.body)["data"]["status"] == "error"


# --- signing ---------------------------------------------------------------------------------------------------------


def test_a_signature_verifies_with_the_librarys_verifier() -> None:
    secret, body = signing.new_secret(), b'{"type":"run.succeeded"}'
    sent = signing.headers([secret], "evt_1", datetime.now(UTC), body)
    assert Webhook(secret).verify(body, sent) == {"type": "run.succeeded"}
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, sent)


def test_during_a_rotation_both_secrets_sign_and_either_verifies() -> None:
    old, new, body = signing.new_secret(), signing.new_secret(), b"{}"
    sent = signing.headers([new, old], "evt_1", datetime.now(UTC), body)
    assert len(sent["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(body, sent)


@pytest.mark.parametrize("text", ["plain-secret", "whsec_!!!", "whsec_" + "QUJD", ""])
def test_a_secret_not_in_whsec_form_or_too_short_is_refused(text: str) -> None:
    with pytest.raises(WebhookConfigError):
        signing.parse_secret(text)


def test_a_fingerprint_reveals_nothing_of_the_secret() -> None:
    secret = signing.new_secret()
    assert signing.fingerprint(secret) not in secret and len(signing.fingerprint(secret)) == 12


# --- URL and address policy ------------------------------------------------------------------------------------------


def test_only_https_unless_plain_http_is_allowed() -> None:
    assert target("https://hooks.example.com:8443/in?x=1", allow_http=False).path == "/in?x=1"
    with pytest.raises(WebhookConfigError, match="https"):
        target("http://hooks.example.com/", allow_http=False)
    assert target("http://hooks.example.com/", allow_http=True).port == 80


@pytest.mark.parametrize(
    "url", ["https://user:pw@example.com/", "ftp://example.com/", "https:///x", "https://e.com/\n"]
)
def test_a_url_with_credentials_another_scheme_no_host_or_a_newline_is_refused(url: str) -> None:
    with pytest.raises(WebhookConfigError):
        target(url, allow_http=True)


def addresses(allow: list[str]) -> AddressPolicy:
    return AddressPolicy(policy(Settings()), Ranges(ipaddress.ip_network(a) for a in allow))


@pytest.mark.parametrize("found", ["127.0.0.1", "169.254.169.254", "10.1.2.3", "::1", "::ffff:127.0.0.1", "fe80::1"])
def test_loopback_private_link_local_and_metadata_are_refused_without_the_allowance(found: str) -> None:
    assert addresses([]).refusal(ipaddress.ip_address(found)) is not None


def test_a_public_address_passes() -> None:
    assert addresses([]).refusal(ipaddress.ip_address("93.184.216.34")) is None


def test_the_allowance_opens_loopback_but_never_cloud_metadata() -> None:
    allowed = addresses(["127.0.0.0/8", "169.254.0.0/16"])
    assert allowed.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert "metadata" in (allowed.refusal(ipaddress.ip_address("169.254.169.254")) or "")


# --- backoff ---------------------------------------------------------------------------------------------------------


def test_the_backoff_doubles_up_to_its_longest_with_jitter_of_half_either_way() -> None:
    backoff = Backoff(first=5, longest=60, max_age=86400)
    assert [backoff.delay(n, 0.5) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 40, 60]
    assert backoff.delay(1, 0.0) == 2.5 and backoff.delay(1, 0.999) < 7.5


def test_an_event_is_dead_lettered_once_the_next_attempt_falls_past_its_max_age() -> None:
    backoff = Backoff(first=10, longest=10, max_age=25)
    assert backoff.next_attempt(since=0, now=10, attempts=1, jitter=0.5) == 20
    assert backoff.next_attempt(since=0, now=20, attempts=2, jitter=0.5) is None
