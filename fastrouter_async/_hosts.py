"""Where downloads may go: never to link-local or cloud-metadata addresses, unless allowed.

A video link comes from a server, so it is untrusted input. A link (or a redirect) to
``http://169.254.169.254/...`` would make the client fetch a cloud machine's metadata, its
credentials included, and write them to disk as "the video". Refused by default, for every
request of a download and every redirect it follows, before anything is sent:

* **addresses** in 169.254.0.0/16 (IPv4 link-local: AWS, GCP, Azure, OpenStack and Oracle
  metadata at 169.254.169.254, ECS task metadata at 169.254.170.2) and fe80::/10 (IPv6
  link-local), in any spelling the resolver accepts (``2852039166``, ``0xa9fea9fe``) and
  embedded in IPv6 forms (IPv4-mapped ``::ffff:169.254.169.254``, IPv4-compatible, 6to4,
  NAT64 ``64:ff9b::/96``);
* the metadata services that live elsewhere: ``fd00:ec2::254`` (AWS, IPv6), ``100.100.100.200``
  (Alibaba Cloud), ``168.63.129.16`` (Azure's host endpoint), ``192.0.0.192`` (Oracle Cloud);
* **names** of metadata services (``metadata.google.internal``, ``metadata.goog``,
  ``metadata``, ``instance-data``...), and any name that **resolves** to a refused address:
  the name is looked up before connecting and every address it has is checked.

Loopback and private networks stay allowed (tests and local mirrors use them). The lookup
here and aiohttp's own lookup when connecting are two lookups: a DNS server that answers
differently the second time (DNS rebinding) is not covered.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable

import anyio
from yarl import URL

from ._errors import DownloadError

__all__ = ["UrlCheck", "address_problem", "check_download_url", "download_url_check", "name_problem"]

UrlCheck = Callable[[URL], Awaitable[None]]
"""Called with every URL a download is about to request (redirect targets too); raises to refuse it."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200", "168.63.129.16", "192.0.0.192")
)
_METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
        "metadata.platformequinix.com",
        "metadata.packet.net",
    }
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_RULE = (
    "link-local and cloud-metadata addresses are refused; FastRouterSession(allow_link_local_downloads=True) "
    "allows them"
)


def address_problem(address: IPAddress) -> str | None:
    """Why a download may not connect to ``address``, or ``None`` if it may."""
    kind = _refused_kind(address)
    return None if kind is None else f"{address} is {kind}"


def _refused_kind(address: IPAddress) -> str | None:
    for candidate in _with_embedded(address):
        if candidate in _METADATA_ADDRESSES:
            return "a cloud metadata address"
        if any(candidate in network for network in _LINK_LOCAL if network.version == candidate.version):
            return "a link-local address"
    return None


def name_problem(host: str) -> str | None:
    """Why a download may not go to the host named ``host`` (before resolving it), or ``None``."""
    name = host.strip().rstrip(".").lower()
    literal = _literal(name)
    if literal is not None:
        return address_problem(literal)
    if name in _METADATA_NAMES or any(name.endswith("." + known) for known in _METADATA_NAMES if "." in known):
        return f"{name} is a cloud metadata host"
    return None


async def check_download_url(url: URL) -> None:
    """Refuse ``url`` (a :class:`DownloadError` naming the host and the rule) if it may not be fetched."""
    host = url.host or ""
    problem = name_problem(host)
    if problem is None and _literal(host) is None and host:
        try:
            found = await anyio.getaddrinfo(host, url.port or 0, type=socket.SOCK_STREAM)
        except OSError:
            return  # unresolvable: connecting fails the usual way, having sent nothing
        for *_, sockaddr in found:
            address = _literal(str(sockaddr[0]))
            kind = None if address is None else _refused_kind(address)
            if kind is not None:
                problem = f"{host} resolves to {address}, {kind}"
                break
    if problem is not None:
        where = str(url.with_query(None).with_fragment(None).with_user(None))
        raise DownloadError(f"refusing to download from {where}: {problem} ({_RULE})", url=where)


def download_url_check(*, allow_link_local: bool) -> UrlCheck | None:
    """The check the session's downloads run on every URL (``None``: allowed everywhere)."""
    return None if allow_link_local else check_download_url


def _literal(host: str) -> IPAddress | None:
    text = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _with_embedded(address: IPAddress) -> list[IPAddress]:
    """``address`` and any IPv4 address carried inside it (mapped, compatible, 6to4, NAT64)."""
    found: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            found.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            found.append(address.sixtofour)
        packed = address.packed
        if address in _NAT64 or (packed[:12] == bytes(12) and packed[12:] != bytes(4)):
            found.append(ipaddress.IPv4Address(packed[12:]))  # NAT64, or the old IPv4-compatible form
    return found
