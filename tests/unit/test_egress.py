"""The egress policy's judgement of addresses, names and the operator's allow list (core/egress.py).

Judged only: nothing here dials an address, so no test sends traffic to a private or metadata range.
"""
from __future__ import annotations

import ipaddress
import socket

import pytest

from core.egress import AllowRule, EgressPolicy, EgressRefused, host_addresses

REFUSED_BY_DEFAULT = [
    "127.0.0.1", "127.8.9.10", "0.0.0.0", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "198.18.0.1", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fd00::1", "fc00::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:7f00:1::1", "ff02::1",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111"]


@pytest.mark.parametrize("address", REFUSED_BY_DEFAULT)
def test_the_default_refuses_every_non_public_range(address):
    assert not EgressPolicy().permits(ipaddress.ip_address(address), 80)


@pytest.mark.parametrize("address", PUBLIC)
def test_the_default_permits_public_addresses(address):
    assert EgressPolicy().permits(ipaddress.ip_address(address), 443)


def test_the_hosts_own_addresses_are_refused_even_when_public():
    for address in host_addresses():
        assert not EgressPolicy().permits(address, 80), address


def test_an_allow_rule_opens_its_range_and_only_its_ports():
    policy = EgressPolicy.parse(("127.0.0.1/32:8000", "10.0.0.0/8", "[fd00::/8]:443-444", "192.168.0.0/16:1000-2000"))
    judged = {(a, p): policy.permits(ipaddress.ip_address(a), p) for a, p in [
        ("127.0.0.1", 8000), ("127.0.0.1", 8001), ("127.0.0.2", 8000), ("10.9.9.9", 1), ("10.9.9.9", 65535),
        ("fd00::1", 443), ("fd00::1", 444), ("fd00::1", 445), ("192.168.3.3", 1500), ("192.168.3.3", 999),
        ("::ffff:127.0.0.1", 8000), ("169.254.169.254", 80)]}
    assert judged == {
        ("127.0.0.1", 8000): True, ("127.0.0.1", 8001): False, ("127.0.0.2", 8000): False, ("10.9.9.9", 1): True,
        ("10.9.9.9", 65535): True, ("fd00::1", 443): True, ("fd00::1", 444): True, ("fd00::1", 445): False,
        ("192.168.3.3", 1500): True, ("192.168.3.3", 999): False, ("::ffff:127.0.0.1", 8000): True,
        ("169.254.169.254", 80): False,
    }


@pytest.mark.parametrize("entry", ["nonsense", "10.0.0.0/33", "10.0.0.0/8:0", "10.0.0.0/8:70000", "10.0.0.0/8:9-3",
                                   "[fd00::/8", "10.0.0.0/8:x"])
def test_a_malformed_allow_entry_is_refused_with_its_text(entry):
    with pytest.raises(ValueError, match="BROKER_EGRESS_ALLOW"):
        AllowRule.parse(entry)


def test_a_name_is_judged_by_every_address_it_resolves_to(monkeypatch):
    """DNS rebinding: whatever the name answers, only a permitted address is returned to dial."""
    answers = {"rebind.example": ["127.0.0.1", "93.184.216.34"], "inside.example": ["10.0.0.1", "127.0.0.1"]}

    def fake_getaddrinfo(host, port, type=0):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    assert EgressPolicy().resolve("rebind.example", 443) == [(socket.AF_INET, "93.184.216.34")]
    with pytest.raises(EgressRefused, match="inside.example .*egress policy"):
        EgressPolicy().resolve("inside.example", 443)


def test_a_literal_address_is_judged_without_a_lookup():
    with pytest.raises(EgressRefused):
        EgressPolicy().resolve("127.0.0.1", 6379)
    with pytest.raises(EgressRefused):
        EgressPolicy().resolve("[::1]", 6379)
    assert EgressPolicy().resolve("8.8.8.8", 53) == [(socket.AF_INET, "8.8.8.8")]
