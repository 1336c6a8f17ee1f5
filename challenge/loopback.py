"""Whether an address a server binds to is reachable from this machine only (the live view and
`challenge serve` then need no token or authentication of their own)."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"
