"""When a process may serve the API, and where: the exposure policy of `pumpwatch demo` and `run`.

Pure decisions (each answers the reasons, empty when allowed); the command line turns them into refusals.
The secret and the demo users are refused whatever the host (`Settings.unsafe_problems`): a proxy in front
of 127.0.0.1 exposes the API as surely as 0.0.0.0. Beyond loopback the API also needs TLS.
"""

from __future__ import annotations

import ipaddress
import socket

from pumpwatch.core.settings import Settings


def is_loopback(host: str) -> bool:
    """True if every address `host` resolves to is a loopback address; ValueError if it resolves to none."""
    try:
        addrs = {ai[4][0] for ai in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        raise ValueError(f"cannot resolve {host!r}") from None
    return all(ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addrs)


def demo_host_problem(host: str) -> str | None:
    """The demo has well-known users and secret: it serves this machine only."""
    if is_loopback(host):
        return None
    return (
        f"{host} is not a loopback address: the demo's users and secret are public, so it refuses to "
        "listen beyond this machine (use `pumpwatch run` with your own users, secret and TLS)"
    )


def exposure_problems(settings: Settings, host: str) -> list[str]:
    """Why the API must not listen on `host` (empty: it may): beyond loopback it needs TLS. The secret and
    demo users are refused whatever the host (`Settings.unsafe_problems`)."""
    if is_loopback(host):
        return []
    if not (settings.api_ssl_certfile and settings.api_ssl_keyfile) and not settings.api_behind_tls_proxy:
        return [
            "no TLS: set PUMPWATCH_API_SSL_CERTFILE and PUMPWATCH_API_SSL_KEYFILE "
            "(or PUMPWATCH_API_BEHIND_TLS_PROXY=true behind a TLS-terminating proxy on this host)"
        ]
    return []


def api_refusals(settings: Settings, host: str, *, demo: bool, demo_users: list[str]) -> list[str]:
    """Everything that refuses to serve the API on `host`: the secret, enabled demo users, missing TLS."""
    return settings.unsafe_problems(demo=demo, demo_users=demo_users) + exposure_problems(settings, host)
