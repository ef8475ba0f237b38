"""The load run shared by the security suite and the benchmarks: many browsers signing in at once."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import requests


def start(browser: requests.Session, base: str, next_path: str = "/whoami") -> str:
    answer = browser.get(f"{base}/omi/login?next={next_path}", allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    return parse_qs(urlsplit(answer.headers["Location"]).query)["state"][0]


def finish(browser: requests.Session, base: str, uid: str, state: str) -> requests.Response:
    # What OMI's page does: APP_HOME_URL + "?uid=" + uid + "&state=" + state, unencoded.
    return browser.get(f"{base}/omi/callback?uid={uid}&state={state}", allow_redirects=False, timeout=10)


def whoami(browser: requests.Session, base: str) -> str | None:
    answer = browser.get(f"{base}/whoami", allow_redirects=False, timeout=10)
    return answer.text if answer.status_code == 200 else None


@dataclass
class LoadResult:
    clients: int
    per_client: int
    counts: dict[str, int] = field(default_factory=lambda: {"sign_ins": 0, "failures": 0, "mix_ups": 0})
    seconds: float = 0.0


def run_load(base: str, clients: int, per_client: int) -> LoadResult:
    """``clients`` browsers each sign in ``per_client`` times as a new uid and check who they are."""
    result = LoadResult(clients, per_client)
    lock = threading.Lock()

    def client(number: int) -> None:
        browser = requests.Session()
        for attempt in range(per_client):
            uid = f"load_{number}_{attempt}"
            outcome = "sign_ins"
            try:
                answer = finish(browser, base, uid, start(browser, base))
                seen = whoami(browser, base) if answer.status_code == 302 else None
                if seen is None:
                    outcome = "failures"
                elif seen != uid:
                    outcome = "mix_ups"
            except (requests.RequestException, AssertionError, KeyError):
                outcome = "failures"
            with lock:
                result.counts[outcome] += 1

    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    result.seconds = time.perf_counter() - began
    return result
