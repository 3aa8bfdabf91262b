"""Is the Hugging Face hub reachable? Answered in seconds, so offline runs never stall on library retries."""

from __future__ import annotations

import os
import socket
import threading

from bench.errors import BenchError, one_line

OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
PROBE_TIMEOUT_S = 3.0


def check_reachable() -> None:
    """Fail in seconds when the hub cannot answer.

    Without a network, datasets.load_dataset (and from_pretrained) retries for about 23 s before it gives up (measured on a
    machine with no DNS), which would stall every `auto` run; a direct TCP connect answers in 3 s at most.
    """
    for var in OFFLINE_VARS:
        if os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            raise BenchError(f"{var}={os.environ[var]} is set (offline mode)")
    host, port = hub_address()
    outcome: list[OSError | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc)

    # A thread bounds the DNS lookup too, which the socket timeout does not cover.
    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(PROBE_TIMEOUT_S)
    if not outcome:
        raise BenchError(f"no answer from {host}:{port} within {PROBE_TIMEOUT_S:g} s (no network?)")
    if outcome[0] is not None:
        raise BenchError(f"cannot reach {host}:{port} ({one_line(outcome[0])})")


def hub_address() -> tuple[str, int]:
    """Where a hub request first connects: the endpoint ($HF_ENDPOINT), or the proxy in front of it."""
    import urllib.parse
    import urllib.request

    url = urllib.parse.urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(url.hostname or ""):
        url = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
