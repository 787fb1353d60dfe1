"""The one URL guard (``mar_core.url_guard``) at every outbound URL: a test per finding of the
outside probe (issue 33), each URL exactly as the probe sent it, at registration (``POST
/webhooks``, a job's ``webhooks``, ``tracking.mlflow.uri``) and at delivery."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from mar_core import url_guard
from mar_core.url_guard import UrlPolicy, UrlRefused, check_url
from tests.api.conftest import error_params, train_spec
from tests.webhook_receiver import Receiver
from worker.webhook_delivery import deliver_due

# IPv6 forms that carry a loopback, metadata-service or unspecified IPv4 address
MAPPED_MLFLOW = [
    "http://[::ffff:127.0.0.1]:5000/",
    "http://[::ffff:169.254.169.254]:5000/",
    "http://[::ffff:0.0.0.0]:5000/",
]
EMBEDDED_WEBHOOK = [
    "http://[::127.0.0.1]/x",  # IPv4-compatible
    "http://[64:ff9b::7f00:1]/x",  # NAT64 of 127.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/x",  # NAT64 of 169.254.169.254
    "http://[2002:7f00:1::]/x",  # 6to4 of 127.0.0.1
    *[u.replace(":5000/", "/x") for u in MAPPED_MLFLOW],
]


def _mlflow(client, auth, uri):
    return client.post("/jobs", json=train_spec(tracking={"mlflow": {"uri": uri}}), headers=auth)


@pytest.mark.parametrize("uri", MAPPED_MLFLOW)
def test_an_ipv4_mapped_mlflow_uri_is_refused_like_its_ipv4_form(client, auth, uri):
    r = _mlflow(client, auth, uri)
    assert r.status_code == 422 and error_params(r) == ["tracking.mlflow.uri"], r.text
    ipv4 = uri.split("ffff:")[1].split("]")[0]
    assert ipv4 in r.json()["detail"][0]["message"]  # the message names where it would go


def test_credentials_in_an_mlflow_uri_are_refused(client, auth):
    r = _mlflow(client, auth, "https://user:pass@mlflow.example:5000")
    assert r.status_code == 422 and error_params(r) == ["tracking.mlflow.uri"], r.text
    assert "credentials" in r.text
    assert _mlflow(client, auth, "https://mlflow.example:5000").status_code == 201


@pytest.mark.parametrize("url", EMBEDDED_WEBHOOK)
def test_a_webhook_url_carrying_a_local_ipv4_address_is_refused(client, auth, url):
    r = client.post("/webhooks", json={"url": url}, headers=auth)
    assert r.status_code == 422 and error_params(r) == ["url"], r.text
    r = client.post("/jobs", json=train_spec(webhooks=[{"url": url}]), headers=auth)
    assert r.status_code == 422 and error_params(r) == ["webhooks.url"], r.text


@pytest.mark.parametrize("char", ["\x00", "\x01"])
def test_a_webhook_url_with_a_control_character_is_refused_and_not_stored(client, app, auth, char):
    app.state.settings.webhook_allow_private = True  # the address is not what refuses it
    r = client.post("/webhooks", json={"url": f"http://127.0.0.1:8/a{char}b"}, headers=auth)
    assert r.status_code == 422 and error_params(r) == ["url"], r.text
    assert client.get("/webhooks", headers=auth).json() == []


def test_an_empty_events_list_is_refused_not_stored_as_every_event(client, app, auth):
    app.state.settings.webhook_allow_private = True
    r = client.post("/webhooks", json={"url": "http://127.0.0.1:8/x", "events": []}, headers=auth)
    assert r.status_code == 422 and error_params(r) == ["events"], r.text
    r = client.post(
        "/jobs", json=train_spec(webhooks=[{"url": "http://127.0.0.1:8/x", "events": []}]), headers=auth
    )
    assert r.status_code == 422 and error_params(r) == ["webhooks.events"], r.text
    assert client.get("/webhooks", headers=auth).json() == []


@pytest.mark.parametrize("port", ["0", "65536", "99999"])
def test_a_port_outside_1_to_65535_is_refused(client, app, auth, port):
    app.state.settings.webhook_allow_private = True
    r = client.post("/webhooks", json={"url": f"http://127.0.0.1:{port}/x"}, headers=auth)
    assert r.status_code == 422 and error_params(r) == ["url"], r.text
    assert _mlflow(client, auth, f"http://10.1.2.3:{port}/").status_code == 422


def test_a_delivery_is_checked_again_with_the_same_rules(client, app, auth, db):
    """Registered while private addresses were allowed; once they are not, the delivery to the
    same receiver through its IPv4-mapped form is refused before any connection."""
    receiver = Receiver()
    try:
        app.state.settings.webhook_allow_private = True
        mapped = receiver.url.replace("127.0.0.1", "[::ffff:127.0.0.1]")
        job = client.post("/jobs", json=train_spec(webhooks=[{"url": mapped}]), headers=auth).json()
        client.post(f"/jobs/{job['id']}/cancel", headers=auth)
        app.state.settings.webhook_allow_private = False
        with httpx.Client(timeout=5) as http:
            assert deliver_due(db, app.state.settings, http) == 1
        [d] = client.get(f"/jobs/{job['id']}/webhook-deliveries", headers=auth).json()
        assert d["status"] == "failed" and "127.0.0.1" in d["attempts"][0]["error"], d
        assert receiver.requests == []
    finally:
        receiver.close()


def test_a_delivery_connects_to_the_address_it_checked(client, app, auth, db, monkeypatch):
    """``hook.test`` resolves (here, by the guard's resolver) to the receiver's address and nowhere
    else: the attempt reaches it only by connecting to the checked address, with ``Host`` naming
    the host (a name resolved again by the HTTP client could point elsewhere: DNS rebinding)."""
    receiver = Receiver()
    try:
        port = receiver.url.split(":")[2].split("/")[0]
        monkeypatch.setattr(
            url_guard, "resolve_addresses", lambda host, _port: [ipaddress.ip_address("127.0.0.1")]
        )
        app.state.settings.webhook_allow_private = True
        url = f"http://hook.test:{port}/hook"
        job = client.post("/jobs", json=train_spec(webhooks=[{"url": url}]), headers=auth).json()
        client.post(f"/jobs/{job['id']}/cancel", headers=auth)
        with httpx.Client(timeout=5) as http:
            assert deliver_due(db, app.state.settings, http) == 1
        [d] = client.get(f"/jobs/{job['id']}/webhook-deliveries", headers=auth).json()
        assert d["status"] == "delivered", d
        assert {k.lower(): v for k, v in receiver.requests[0]["headers"].items()}[
            "host"
        ] == f"hook.test:{port}"
    finally:
        receiver.close()


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://[64:ff9b::808:808]/x", True),  # NAT64 of a public address
        ("https://8.8.8.8/x", True),
        ("http://[2002:a00:1::]/x", False),  # 6to4 of 10.0.0.1: private
        ("http://2130706433/x", False),  # 127.0.0.1 as one number
        ("http://0/x", False),
        ("http://[fe80::1%25eth0]/x", False),
        ("http://example.com\\@127.0.0.1/x", False),
    ],
)
def test_the_guard_on_its_own(url, allowed):
    """No resolver needed for these: each host is an address literal, or refused before it is resolved."""
    policy = UrlPolicy()
    if allowed:
        assert check_url(url, policy) == url
    else:
        with pytest.raises(UrlRefused):
            check_url(url, policy)
