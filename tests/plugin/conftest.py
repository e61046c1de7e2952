from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

# pytester's in-process runs drop every module first imported during the run. httpx imports httpcore
# lazily (on its first transport) and caches httpcore's exception classes in a module global; were
# httpcore first imported inside a run, httpx would keep mapping the classes of that discarded copy,
# and later tests would meet raw httpcore exceptions. Imported here, before any run, both stay put.
import httpcore  # noqa: F401
import httpx  # noqa: F401
import pytest

ROOT = Path(__file__).resolve().parents[2]

#: A client as users write them: it hard-codes Adobe's hosts and cannot be pointed anywhere else.
CLIENT = '''
import re
import time

import requests

class TargetClient:
    def __init__(self, client_code, token=None):
        self.base = f"https://{client_code}.tt.omtrdc.net"
        self.code = client_code
        self.token = token

    def _headers(self):
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def update(self, customer_id, **attrs):
        params = {"mbox3rdPartyId": customer_id, **{f"profile.{k}": v for k, v in attrs.items()}}
        return requests.post(f"{self.base}/m2/{self.code}/profile/update", params=params, headers=self._headers())

    def fetch(self, customer_id):
        return requests.get(f"{self.base}/rest/v1/profiles/thirdPartyId/{customer_id}",
                            params={"client": self.code}, headers=self._headers())

    def upload(self, rows, interval=30):
        names = [k for k in rows[0] if k != "id"]
        lines = ["batch=thirdPartyId," + ",".join(names)]
        lines += [",".join([r["id"]] + [str(r.get(n, "")) for n in names]) for r in rows]
        r = requests.post(f"http://{self.code}.tt.omtrdc.net/m2/{self.code}/v2/profile/batchUpdate",
                          data="\\n".join(lines) + "\\n", headers={"Content-Type": "application/x-www-form-urlencoded",
                                                                  **self._headers()})
        r.raise_for_status()
        status_url = re.search(r"<batchStatus>(.*?)</batchStatus>", r.text).group(1)
        while True:
            status = re.search(r"<status>(.*?)</status>", requests.get(status_url, headers=self._headers()).text)
            if status.group(1) != "incomplete":
                return status.group(1)
            time.sleep(interval)
'''

Run = Callable[..., pytest.RunResult]


@pytest.fixture
def run(pytester: pytest.Pytester) -> Run:
    """Write a test module (with ``client.py`` beside it) and run it in process with pytest."""

    def go(code: str, *args: str, ini: str | None = None) -> pytest.RunResult:
        pytester.makepyfile(client=CLIENT)
        pytester.makepyfile(test_example=textwrap.dedent(code))
        if ini is not None:
            pytester.makeini(textwrap.dedent(ini))
        return pytester.runpytest("-p", "no:cacheprovider", *args)

    return go
