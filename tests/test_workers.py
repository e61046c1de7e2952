"""``serve --workers N`` refused where it cannot work: one line on stderr, exit status 2, no server."""

from __future__ import annotations

import pytest
from target_profile_mock.mockserver import cli, workers
from test_cli import _assert_refused, _run

pytestmark = pytest.mark.slow


def test_more_than_one_worker_on_the_memory_store_is_refused() -> None:
    for store in ([], ["--store", "memory://"]):
        _assert_refused(_run("serve", "--port", "0", "--workers", "2", *store),
                        "--workers 2 needs a shared store", "each worker would be a separate fake",
                        "--store redis://HOST:PORT/DB")


def test_workers_with_tls_are_refused_before_the_store_is_opened() -> None:
    # nothing listens at this store: the refusal comes first
    _assert_refused(_run("serve", "--port", "0", "--workers", "3", "--tls", "--store", "redis://127.0.0.1:1/0"),
                    "--workers 3", "--tls serves from one process", "--workers 1")


def test_a_platform_without_fork_is_told_so(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(workers, "can_fork", lambda: False)
    assert cli.main(["serve", "--port", "0", "--workers", "2", "--store", "redis://127.0.0.1:1/0"]) == 2
    out = capsys.readouterr()
    assert out.err == ("target-profile-mock: error: --workers 2: this platform has no fork() (the workers are "
                       "forked processes, POSIX only); use --workers 1\n")
    assert "serving on" not in out.out
