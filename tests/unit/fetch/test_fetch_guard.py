"""The SSRF guard: address classes, allow-lists, names, and refusal before any connection."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from yarl import URL

from schemas.dead_letter import Reason
from services.config import FetchSettings
from services.errors import ConfigError
from services.fetch import AddressGuard, Fetcher, FetchError
from services.fetch.guard import blocked_category, parse_ip_literal

from .conftest import Server

BLOCKED = {
    "127.0.0.1": "loopback", "127.255.0.9": "loopback", "::1": "loopback",
    "10.1.2.3": "private", "172.16.0.1": "private", "172.31.255.255": "private", "192.168.1.1": "private",
    "fc00::1": "private", "fd12:3456::1": "private",
    "169.254.169.254": "link-local", "169.254.0.1": "link-local", "fe80::1": "link-local",
    "fd00:ec2::254": "private",  # AWS' IPv6 metadata address
    "0.0.0.0": "unspecified", "0.1.2.3": "unspecified", "::": "unspecified",
    "224.0.0.1": "multicast", "239.255.255.250": "multicast", "224.0.1.1": "multicast",
    "ff02::1": "multicast", "ff0e::1": "multicast",
    "240.0.0.1": "reserved", "255.255.255.255": "reserved", "198.18.0.1": "reserved", "fec0::1": "reserved",
    "100.64.0.1": "CGNAT", "100.127.255.254": "CGNAT", "100.100.100.200": "CGNAT",  # Alibaba's metadata
    "192.0.2.1": "documentation", "2001:db8::1": "documentation",
    # IPv6 forms that carry a refused IPv4 address
    "::ffff:127.0.0.1": "loopback", "::ffff:169.254.169.254": "link-local", "::ffff:10.0.0.1": "private",
    "64:ff9b::a9fe:a9fe": "link-local", "2002:a9fe:a9fe::1": "link-local", "2002:7f00:1::": "loopback",
    "::127.0.0.1": "reserved", "2001:0:4136:e378:8000:63bf:3fff:fdd2": "reserved",  # IPv4-compatible, Teredo
}
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e",
          "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"]


@pytest.mark.parametrize(("address", "category"), BLOCKED.items())
def test_blocked_addresses(address: str, category: str) -> None:
    found = blocked_category(ipaddress.ip_address(address))
    assert found is not None
    assert category in found


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    # Only classified, never connected to: the tests stay on loopback.
    assert blocked_category(ipaddress.ip_address(address)) is None


def test_allow_networks_exempt_an_address_and_its_ipv6_forms() -> None:
    guard = AddressGuard(["127.0.0.0/8", "fd00::/8"])
    for address in ["127.0.0.1", "127.9.9.9", "::ffff:127.0.0.1", "fd00::5"]:
        assert guard.refusal(ipaddress.ip_address(address)) is None
    for address in ["10.0.0.1", "::1", "169.254.169.254", "fc00::1"]:
        assert guard.refusal(ipaddress.ip_address(address)) is not None


async def test_allow_list_covers_the_ipv4_mapped_form(server: Server, settings: FetchSettings) -> None:
    async with Fetcher(settings) as fetcher:
        assert await fetcher.fetch(server.url("/ok", host="[::ffff:127.0.0.1]")) == b"hello"


def test_bad_cidr_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="XMODAL_FETCH__ALLOW_NETWORKS"):
        AddressGuard(["127.0.0.0/8", "not-a-network"])


@pytest.mark.parametrize(("host", "address"), [
    ("127.0.0.1", "127.0.0.1"), ("127.1", "127.0.0.1"), ("2130706433", "127.0.0.1"),
    ("0x7f.0.0.1", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"), ("0xa9fea9fe", "169.254.169.254"),
    ("::1", "::1"),
])
def test_legacy_numeric_hosts_are_read_as_addresses(host: str, address: str) -> None:
    assert parse_ip_literal(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize("host", ["example.com", "localhost", "1.example", "0x7g.1", ""])
def test_names_are_not_addresses(host: str) -> None:
    assert parse_ip_literal(host) is None


@pytest.mark.parametrize("host", ["metadata.google.internal", "METADATA.google.internal.", "metadata.goog",
                                  "instance-data", "metadata"])
def test_metadata_names_are_refused(host: str) -> None:
    with pytest.raises(FetchError) as info:
        AddressGuard(["0.0.0.0/0", "::/0"]).check_url(URL(f"http://{host}/computeMetadata/v1/"))
    assert info.value.reason is Reason.fetch_forbidden


async def fetch_error(settings: FetchSettings, uri: str, **overrides: Any) -> FetchError:
    with pytest.raises(FetchError) as info:
        async with Fetcher(settings.model_copy(update=overrides), retry_backoff_s=0.01) as fetcher:
            await fetcher.fetch(uri)
    return info.value


@pytest.mark.parametrize("host", [
    "10.0.0.1", "169.254.169.254", "[fd00:ec2::254]", "[::1]", "[fe80::1]", "[fc00::1]", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "240.0.0.1", "[::ffff:127.0.0.1]", "[::ffff:169.254.169.254]", "[2002:a00:1::]",
    "127.0.0.2", "127.1", "2130706433", "0x7f.0.0.1",
])
async def test_literal_addresses_are_refused_before_connecting(
    settings: FetchSettings, network: Any, host: str
) -> None:
    err = await fetch_error(settings, f"http://{host}/latest/meta-data/", allow_networks=[])
    assert err.reason is Reason.fetch_forbidden
    assert not err.retriable
    assert "XMODAL_FETCH__ALLOW_NETWORKS" in str(err)
    assert network.connects == []
    assert network.lookups == []


async def test_loopback_is_refused_without_allow_list(
    server: Server, settings: FetchSettings, network: Any
) -> None:
    err = await fetch_error(settings, server.url("/ok"), allow_networks=[])
    assert err.reason is Reason.fetch_forbidden
    assert "loopback" in str(err)
    assert network.connects == []


async def test_name_resolving_to_loopback_is_refused(
    server: Server, settings: FetchSettings, network: Any
) -> None:
    err = await fetch_error(settings, server.url("/ok", host="localhost"), allow_networks=[])
    assert err.reason is Reason.fetch_forbidden
    assert "localhost resolves to" in str(err)
    assert network.lookups == ["localhost"]
    assert network.connects == []


async def test_name_resolving_to_metadata_address_is_refused(settings: FetchSettings, network: Any) -> None:
    network.dns["images.example.test"] = [["169.254.169.254"]]
    err = await fetch_error(settings, "http://images.example.test/cat.png")
    assert err.reason is Reason.fetch_forbidden
    assert "169.254.169.254" in str(err)
    assert "link-local" in str(err)
    assert network.connects == []


async def test_mixed_answer_connects_only_to_allowed_addresses(
    server: Server, settings: FetchSettings, network: Any
) -> None:
    network.dns["mixed.example.test"] = [["10.0.0.7", "127.0.0.1", "169.254.169.254"]]
    async with Fetcher(settings) as fetcher:
        assert await fetcher.fetch(server.url("/ok", host="mixed.example.test")) == b"hello"
    assert network.connects == ["127.0.0.1"]


async def test_dns_rebinding_cannot_swap_the_checked_address(
    server: Server, settings: FetchSettings, network: Any
) -> None:
    # The name answers 127.0.0.1 (allowed) once, then 10.1.2.3. The connection must use the answer that was
    # checked: a second lookup between check and connect would send it to 10.1.2.3 (the fixture would fail).
    network.dns["rebind.example.test"] = [["127.0.0.1"], ["10.1.2.3"]]
    url = server.url("/ok", host="rebind.example.test")
    async with Fetcher(settings) as fetcher:
        assert await fetcher.fetch(url) == b"hello"
    assert network.lookups == ["rebind.example.test"]
    err = await fetch_error(settings, url)  # a fresh fetcher resolves again and gets the private answer
    assert err.reason is Reason.fetch_forbidden
    assert "10.1.2.3" not in network.connects


async def test_unknown_name_fails_without_retry(settings: FetchSettings, network: Any) -> None:
    network.dns["gone.example.test"] = [[]]
    err = await fetch_error(settings, "http://gone.example.test/a.png")
    assert err.reason is Reason.fetch_failed
    assert network.lookups == ["gone.example.test"]
    assert network.connects == []
