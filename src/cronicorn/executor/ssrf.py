"""SSRF guard: which addresses an endpoint call may reach.

Endpoint URLs are user input and plan input, so a job must not be able to reach the worker's
own network (metadata services, databases, admin panels). The check happens where the
connection is made: `GuardedResolver` plugs into aiohttp's connector, so the address that was
checked is the address that is dialled (no second DNS lookup, no rebinding window). Literal IP
hosts never reach a resolver, so `HostPolicy.check_url` refuses those before the request, and
the executor calls it again on every redirect hop.

A host is read the way `inet_aton` (and the WHATWG URL parser) would: `127.1`, `2130706433`,
`0x7f000001`, `017700000001` and `0177.0.0.1` all mean 127.0.0.1. Whether a given HTTP client
turns them into addresses or not is its own business; the guard refuses every such
non-canonical numeric host (and any host ending in a number that is no valid address), so the
outcome never depends on the aiohttp version.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from typing import Protocol, TypeAlias

from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SPECIAL: tuple[tuple[str, IPNetwork], ...] = tuple(
    (reason, ipaddress.ip_network(net))
    for reason, net in (
        ("this network", "0.0.0.0/8"),
        ("IETF protocol assignments", "192.0.0.0/24"),
        ("documentation", "192.0.2.0/24"),
        ("benchmarking", "198.18.0.0/15"),
        ("documentation", "198.51.100.0/24"),
        ("documentation", "203.0.113.0/24"),
        ("reserved", "240.0.0.0/4"),
        ("site-local (deprecated)", "fec0::/10"),
        ("IPv4-compatible", "::/96"),
        ("discard-only", "100::/64"),
        ("local-use NAT64", "64:ff9b:1::/48"),
        ("documentation", "2001:db8::/32"),
    )
)
"""Ranges refused by name, so the guard does not depend on how a Python version's
`ipaddress` classifies them (3.11 calls 192.0.0.192 and fec0::1 global)."""
_LOOPBACK = ipaddress.IPv4Address("127.0.0.1")
_NUMERIC_LABEL = re.compile(r"(?:0[xX][0-9a-fA-F]*|[0-9]+)")


class SsrfBlocked(OSError):
    """A destination refused by the guard. An OSError so aiohttp's connector passes it up
    (wrapped in ClientConnectorDNSError) instead of treating it as a bug."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"blocked destination {host}: {reason}")
        self.host = host
        self.reason = reason


class Resolver(Protocol):
    """Name → addresses. Injectable so tests can map public-looking names anywhere."""

    async def resolve(self, host: str) -> list[IPAddress]: ...


class SystemResolver:
    """The operating system's resolver (getaddrinfo in the loop's thread pool)."""

    async def resolve(self, host: str) -> list[IPAddress]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        seen: dict[IPAddress, None] = {}
        for _family, _type, _proto, _name, sockaddr in infos:
            seen[ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])] = None
        return list(seen)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address tunnels to (mapped, 6to4, Teredo, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def blocked_reason(ip: IPAddress) -> str | None:
    """Why `ip` is not a public unicast address, or None when it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            return blocked_reason(inner)
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("shared address space (CGNAT)", isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT),
        ("site-local (deprecated)", isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local),
    )
    for reason, hit in checks:
        if hit:
            return reason
    for reason, net in _SPECIAL:
        if ip.version == net.version and ip in net:
            return reason
    if not ip.is_global:
        return "not globally routable"
    return None


def _parse_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _ipv4_part(part: str) -> int | None:
    """One dotted part as inet_aton reads it: 0x… hex, 0… octal, else decimal."""
    if part[:2] in ("0x", "0X"):
        digits = part[2:]
        if digits and not all(c in "0123456789abcdefABCDEF" for c in digits):
            return None
        return int(digits or "0", 16)
    if not part.isascii() or not part.isdigit():
        return None
    if len(part) > 1 and part[0] == "0":
        return int(part, 8) if all(c in "01234567" for c in part) else None
    return int(part)


def ends_in_number(host: str) -> bool:
    """True when the host's last label is numeric: such a host is an IPv4 address (in some
    spelling) or invalid, never a name (the WHATWG URL rule)."""
    last = host[:-1] if host.endswith(".") else host
    return bool(_NUMERIC_LABEL.fullmatch(last.rsplit(".", 1)[-1]))


def parse_ipv4_loose(host: str) -> ipaddress.IPv4Address | None:
    """`host` read the way `inet_aton` reads it (1 to 4 parts, each hex, octal or decimal,
    the last one filling the remaining bytes; one trailing dot allowed), or None."""
    text = host[:-1] if host.endswith(".") else host
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = [_ipv4_part(p) for p in parts]
    if any(v is None for v in values):
        return None
    numbers = [v for v in values if v is not None]
    *head, last = numbers
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    value = 0
    for v in head:
        value = value * 256 + v
    return ipaddress.IPv4Address((value << 8 * (4 - len(head))) | last)


class HostPolicy:
    """The allow switches of SPEC §8: everything private is refused unless
    `allow_private_networks`, or the host name / address / CIDR is in `allowed_hosts`."""

    def __init__(self, *, allow_private_networks: bool, allowed_hosts: Iterable[str]) -> None:
        self.allow_private_networks = allow_private_networks
        self._names: set[str] = set()
        self._suffixes: list[str] = []
        self._networks: list[IPNetwork] = []
        for entry in (h.strip().lower() for h in allowed_hosts):
            if not entry:
                continue
            try:
                self._networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if entry.startswith("*."):
                    self._suffixes.append(entry[1:])
                else:
                    self._names.add(entry.rstrip("."))
        self._literal_cache: dict[str, str | None] = {}

    def name_allowed(self, host: str) -> bool:
        """True when the host name itself is allow-listed (any address it resolves to)."""
        name = host.lower().rstrip(".")
        return name in self._names or any(name.endswith(s) for s in self._suffixes)

    def ip_refusal(self, ip: IPAddress) -> str | None:
        """Why a connection to `ip` is refused, or None when it is allowed."""
        if self.allow_private_networks or any(ip in net for net in self._networks):
            return None
        return blocked_reason(ip)

    def check_url(self, url: URL) -> str | None:
        """Refusal reason for the parts checkable without DNS: scheme and literal IP hosts."""
        if url.scheme not in ALLOWED_SCHEMES:
            return f"scheme {url.scheme!r} is not allowed (only http and https)"
        host = url.raw_host
        if not host:
            return "URL has no host"
        if host in self._literal_cache:
            return self._literal_cache[host]
        reason = self._host_refusal(host)
        if len(self._literal_cache) < 10_000:
            self._literal_cache[host] = reason
        return reason

    def _host_refusal(self, host: str) -> str | None:
        ip = _parse_ip(host)
        if ip is not None:
            return None if self.name_allowed(host) else self.ip_refusal(ip)
        if ends_in_number(host):
            loose = parse_ipv4_loose(host)
            if loose is None:
                return f"{host!r} is not a valid IPv4 address"
            why = blocked_reason(loose)
            kind = f"{loose}, {why}" if why else str(loose)
            return f"{host!r} is a non-canonical spelling of {kind} (write a.b.c.d)"
        name = host.lower().rstrip(".")
        if (name == "localhost" or name.endswith(".localhost")) and not self.name_allowed(name):
            return self.ip_refusal(_LOOPBACK)
        return None

    def check_resolved(self, host: str, addresses: Iterable[IPAddress]) -> None:
        """Raise SsrfBlocked if any resolved address is refused. One bad record refuses the
        host: a mixed answer is the classic rebinding trick."""
        if self.name_allowed(host):
            return
        for ip in addresses:
            reason = self.ip_refusal(ip)
            if reason is not None:
                raise SsrfBlocked(host, f"resolves to {ip} ({reason})")


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that checks every answer, so the connector dials only checked IPs."""

    def __init__(self, resolver: Resolver, policy: HostPolicy) -> None:
        self._resolver = resolver
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = [ipaddress.ip_address(a) for a in await self._resolver.resolve(host)]
        if not addresses:
            raise OSError(f"{host}: no addresses")
        self._policy.check_resolved(host, addresses)
        results: list[ResolveResult] = []
        for ip in addresses:
            fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            if family in (socket.AF_INET, socket.AF_INET6) and family != fam:
                continue
            results.append(
                {
                    "hostname": host,
                    "host": str(ip),
                    "port": port,
                    "family": fam,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            )
        if not results:
            raise OSError(f"{host}: no addresses of the requested family")
        return results

    async def close(self) -> None:
        return None


def find_ssrf_block(exc: BaseException) -> SsrfBlocked | None:
    """The SsrfBlocked inside an aiohttp connector error, if that is what it was."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, SsrfBlocked):
            return seen
        inner = getattr(seen, "os_error", None)
        if isinstance(inner, SsrfBlocked):
            return inner
        seen = seen.__cause__
    return None
