"""SSRF guard: content URLs come from producers, so they must not reach the worker's own network.

Two parts work together:

- :class:`AddressGuard` decides. It refuses loopback, private, link-local (cloud metadata lives at
  169.254.169.254), unspecified, multicast, reserved, CGNAT and documentation ranges, the IPv6 forms that
  embed such an IPv4 address (IPv4-mapped, NAT64, 6to4), and well-known metadata host names, unless the
  address is in ``allow_networks`` (``XMODAL_FETCH__ALLOW_NETWORKS``).
- :class:`GuardedResolver` is the aiohttp resolver of the fetcher's connector: it resolves a name once, checks
  every address and hands the connector only the allowed ones. The connection therefore goes to exactly the
  addresses that were checked, so DNS rebinding between a check and the connect has no window to use.

aiohttp never asks the resolver about IP literals, which is why :meth:`AddressGuard.check_url` checks literals
(and the legacy numeric IPv4 forms such as ``2130706433``) itself before every request, redirects included.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence

from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from schemas.dead_letter import Reason
from services.errors import ConfigError
from services.fetch.errors import FetchError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SockAddr = tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes]
AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, SockAddr]

ALLOW_HINT = "XMODAL_FETCH__ALLOW_NETWORKS"
HTTP_SCHEMES = frozenset({"http", "https"})

# Names that reach a cloud metadata service without a metadata IP in the URL.
METADATA_HOSTS = frozenset({
    "metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal",
})


def _nets(label: str, *cidrs: str) -> list[tuple[IPNetwork, str]]:
    return [(ipaddress.ip_network(c), label) for c in cidrs]


# Explicit table rather than only ipaddress' is_* flags: those flags changed between Python patch releases
# (3.11.7 calls 2002::/16, fec0::/10 and 224.0.1.0/24 "global").
_BLOCKED: list[tuple[IPNetwork, str]] = [
    *_nets("unspecified", "0.0.0.0/8", "::/128"),
    *_nets("loopback", "127.0.0.0/8", "::1/128"),
    *_nets("private", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "64:ff9b:1::/48"),
    *_nets("link-local (cloud metadata lives here)", "169.254.0.0/16", "fe80::/10"),
    *_nets("shared address space (CGNAT)", "100.64.0.0/10"),
    *_nets("multicast", "224.0.0.0/4", "ff00::/8"),
    *_nets("reserved", "240.0.0.0/4", "192.0.0.0/24", "192.88.99.0/24", "198.18.0.0/15", "::/8", "100::/64",
           "2001::/23", "fec0::/10"),
    *_nets("documentation", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32",
           "3fff::/20"),
]
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, NAT64 well-known prefix, 6to4), if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def blocked_category(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address (e.g. 'loopback'), or None when it is one."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        # The packet ends up at the IPv4 address, so its verdict is the one that counts.
        return blocked_category(inner)
    for net, label in _BLOCKED:
        if ip in net:
            return label
    if ip.is_multicast:
        return "multicast"
    if not ip.is_global:
        return "not globally routable"
    return None


def parse_ip_literal(host: str) -> IPAddress | None:
    """``host`` as an address if it is one, legacy IPv4 forms (``127.1``, ``0x7f.1``, ``2130706433``) too."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not host or not all(c.isalnum() or c == "." for c in host) or not host[0].isdigit():
        return None
    try:
        # inet_aton is what the C library applies to such names; asking it gives the address they reach.
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def is_valid_host(host: str) -> bool:
    """An IP literal or a DNS name (yarl has already IDNA-encoded Unicode names)."""
    if parse_ip_literal(host) is not None:
        return True
    labels = host.removesuffix(".").split(".")
    return len(host) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


def normalize_host(host: str) -> str:
    return host.rstrip(".").lower()


class AddressGuard:
    """Decides which addresses and URLs a fetch may reach."""

    def __init__(self, allow_networks: Iterable[str] = ()) -> None:
        allowed: list[IPNetwork] = []
        for cidr in allow_networks:
            try:
                allowed.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError as exc:
                raise ConfigError(f"{ALLOW_HINT}: {cidr!r} is not a CIDR ({exc})") from exc
        self.allow_networks: tuple[IPNetwork, ...] = tuple(allowed)

    def is_allowed(self, ip: IPAddress) -> bool:
        # An IPv4-mapped address is the IPv4 host itself (dual-stack sockets); other embeddings (NAT64,
        # 6to4) travel through gateways, so only their own IPv6 network can allow them.
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        return any(ip in net or (mapped is not None and mapped in net) for net in self.allow_networks)

    def refusal(self, ip: IPAddress) -> str | None:
        """Why a connection to ``ip`` is refused, or None when it may go ahead."""
        if self.is_allowed(ip):
            return None
        return blocked_category(ip)

    def check_ip(self, ip: IPAddress, host: str) -> None:
        category = self.refusal(ip)
        if category is not None:
            raise forbidden_address(host, ip, category)

    def check_name(self, host: str) -> None:
        name = normalize_host(host)
        if name in METADATA_HOSTS:
            raise FetchError(
                Reason.fetch_forbidden,
                f"refused to fetch from {host!r}: a cloud metadata host name. If this is really wanted, use "
                f"its address in the URL and add it to {ALLOW_HINT}",
            )

    def check_url(self, url: URL) -> None:
        """Refuse before connecting: only http(s), no metadata names, no refused IP literals."""
        if url.scheme not in HTTP_SCHEMES:
            raise FetchError(Reason.fetch_forbidden, f"refused {url.scheme or '?'}: in an http fetch: {url}")
        host = url.raw_host
        if not host:
            raise FetchError(Reason.invalid_event, f"URL has no host: {url}")
        literal = parse_ip_literal(host)
        if literal is None:
            self.check_name(host)
        else:
            self.check_ip(literal, host)


def forbidden_address(host: str, ip: IPAddress, category: str) -> FetchError:
    target = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip
    cidr = f"{target}/{target.max_prefixlen}"
    via = "" if host == str(ip) else f" ({host} resolves to {ip})"
    return FetchError(
        Reason.fetch_forbidden,
        f"refused to fetch from {ip}{via}: {category} address. To allow it, add its network to "
        f"{ALLOW_HINT} (a JSON list of CIDRs, e.g. {ALLOW_HINT}='[\"{cidr}\"]')",
    )


class GuardedResolver(AbstractResolver):
    """Resolves once, checks every address, and returns only the allowed ones to the connector."""

    def __init__(self, guard: AddressGuard) -> None:
        self._guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self._guard.check_name(host)
        infos = await _getaddrinfo(host, port, family)
        allowed: list[ResolveResult] = []
        refused: list[tuple[IPAddress, str]] = []
        for fam, _, proto, _, sockaddr in infos:
            ip = ipaddress.ip_address(sockaddr[0])
            category = self._guard.refusal(ip)
            if category is not None:
                refused.append((ip, category))
                continue
            allowed.append(ResolveResult(
                hostname=host, host=_connect_host(fam, sockaddr), port=int(sockaddr[1]), family=fam,
                proto=proto, flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            ))
        if allowed:
            # Refused addresses of a mixed answer are dropped: the connector never sees them.
            return allowed
        if refused:
            raise forbidden_address(host, *refused[0])
        raise FetchError(Reason.fetch_failed, f"{host} resolves to no address", retriable=True)

    async def close(self) -> None:
        return None


async def _getaddrinfo(host: str, port: int, family: int) -> Sequence[AddrInfo]:
    try:
        return await asyncio.get_running_loop().getaddrinfo(
            host, port, family=family, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG
        )
    except socket.gaierror as exc:
        # A name that does not exist stays that way; anything else (EAI_AGAIN, ...) may pass.
        transient = exc.errno != socket.EAI_NONAME
        raise FetchError(Reason.fetch_failed, f"cannot resolve {host}: {exc}", retriable=transient) from exc


def _connect_host(family: int, sockaddr: SockAddr) -> str:
    host = str(sockaddr[0])
    if family == socket.AF_INET6 and len(sockaddr) == 4 and sockaddr[3]:
        return f"{host}%{sockaddr[3]}"  # keep the zone of a (allow-listed) link-local address
    return host
