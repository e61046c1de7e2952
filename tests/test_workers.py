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


# --- the connection balance between workers --------------------------------------------------------
def test_a_worker_holding_more_connections_waits_for_the_others() -> None:
    balance = workers.Balance(3)
    for index, count in enumerate((5, 4, 4)):
        balance.publish(index, count)
    assert not balance.may_accept(0, 5)  # another holds fewer: it takes the next connection
    assert balance.may_accept(1, 4) and balance.may_accept(2, 4)  # none holds fewer: both may
    balance.publish(1, 3)
    assert not balance.may_accept(2, 4)


def test_a_stuck_worker_does_not_hold_the_others_back(monkeypatch: pytest.MonkeyPatch) -> None:
    balance = workers.Balance(2)
    balance.publish(0, 2)
    balance.publish(1, 9)
    assert not balance.may_accept(1, 9)
    later = workers.time.monotonic() + workers.STALE_S + 0.1
    monkeypatch.setattr(workers.time, "monotonic", lambda: later)
    assert balance.may_accept(1, 9)  # worker 0 has not turned its loop for STALE_S: it takes no part


def test_the_balance_is_shared_across_a_fork() -> None:
    import os

    balance = workers.Balance(2)
    pid = os.fork()
    if pid == 0:  # the child publishes, as a worker does
        balance.publish(1, 7)
        os._exit(0)
    os.waitpid(pid, 0)
    balance.publish(0, 8)
    assert not balance.may_accept(0, 8)
    assert balance.may_accept(0, 7)


def test_the_serving_line_names_the_store_without_its_password() -> None:
    args = cli._parser().parse_args(["serve", "--store", "redis://app:s3cret@db.example:6379/2", "--workers", "2"])
    details = cli._details(cli.config_from_args(args), args)
    assert details.endswith(", store redis://app:***@db.example:6379/2 prefix tpm, 2 workers"), details
    assert "s3cret" not in details
