"""Waiting for clients that run in other threads, and fake sleeping."""

from __future__ import annotations

from conftest import Run


def test_wait_for_a_client_in_another_thread(run: Run) -> None:
    result = run('''
        import threading
        import pytest
        from client import TargetClient

        def test_wait_for_batch_and_requests(target_profiles):
            done = []
            worker = threading.Thread(target=lambda: done.append(
                TargetClient("demo").upload([{"id": "c-1", "tier": "gold"}], interval=0.01)))
            worker.start()
            batch = target_profiles.wait_for_batch("complete", timeout=10)
            assert batch["rows"] == [{"thirdPartyId": "c-1", "tier": "gold"}]
            entries = target_profiles.wait_for_requests(3, timeout=10)  # submit + 2 polls
            assert [e.operation for e in entries] == ["batch-submit", "batch-status", "batch-status"]
            worker.join(10)
            assert done == ["complete"]

        def test_wait_for_submission_only(target_profile_server):
            import requests
            url = target_profile_server.url + "/m2/demo/profile/batchUpdate"
            threading.Thread(target=lambda: requests.post(url, data="batch=thirdPartyId,a\\nc-1,1\\n")).start()
            assert target_profile_server.wait_for_batch(timeout=10)["status"] == "incomplete"

        def test_wait_times_out_with_a_message(target_profiles):
            target_profiles.wait_for_batch("complete", timeout=0.2)

        def test_wait_for_requests_times_out(target_profiles):
            target_profiles.wait_for_requests(2, "fetch", timeout=0.2)
    ''')
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*waited 0.2s for a batch to be complete; batches: none submitted*"])
    result.stdout.fnmatch_lines(["*waited 0.2s for 2 fetch request(s); 0 arrived*"])


def test_fake_sleep_finishes_polling_at_once(run: Run) -> None:
    result = run('''
        import time
        import pytest
        from client import TargetClient

        @pytest.mark.target_profiles(fake_sleep=True, lifecycle="seconds=120")
        def test_polls_on_a_two_minute_batch(target_profiles):
            started = time.monotonic()
            assert TargetClient("demo").upload([{"id": "c-1", "tier": "gold"}], interval=30) == "complete"
            assert time.monotonic() - started < 5
            assert len(target_profiles.requests("batch-status")) == 5  # 0, 30, 60, 90 s incomplete; 120 s complete

        def test_sleep_is_real_again(target_profiles):
            assert not getattr(time.sleep, "_target_profiles", False)
    ''')
    result.assert_outcomes(passed=2)
