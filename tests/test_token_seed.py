"""Profile API tokens: seeded (repeatable) on loopback or with --seed; drawn at random when the standalone
server listens beyond loopback without --seed, so nobody who reaches it can predict them."""

from __future__ import annotations

import pytest
import requests
from target_profile_mock.mockserver import MockBackend, MockConfig
from target_profile_mock.mockserver.cli import _parser, config_from_args
from test_cli import serving

TOKEN = "/demo/target/authentication/token?authorizationScope=profile_api"


def _config(*argv: str) -> MockConfig:
    return config_from_args(_parser().parse_args(["serve", *argv]))


@pytest.mark.parametrize(("argv", "random_tokens", "seed"), [
    ((), False, 0),
    (("--host", "localhost"), False, 0),
    (("--host", "::1"), False, 0),
    (("--host", "0.0.0.0"), True, 0),
    (("--host", "0.0.0.0", "--seed", "0"), False, 0),
    (("--host", "192.0.2.1", "--seed", "7"), False, 7),
    (("--seed", "7"), False, 7),
])
def test_tokens_are_random_only_beyond_loopback_without_a_seed(argv, random_tokens, seed):
    config = _config(*argv)
    assert (config.random_tokens, config.seed) == (random_tokens, seed)


def test_seeded_tokens_repeat_and_random_ones_do_not():
    seeded = [MockBackend(MockConfig(seed=3)).issue_token("demo").value for _ in range(2)]
    assert seeded[0] == seeded[1]
    drawn = [MockBackend(MockConfig(seed=3, random_tokens=True)).issue_token("demo").value for _ in range(2)]
    assert drawn[0] != drawn[1] and seeded[0] not in drawn


def test_random_tokens_leave_the_seeded_batch_ids_as_they_were():
    plain, random_tokens = MockBackend(MockConfig(seed=3)), MockBackend(MockConfig(seed=3, random_tokens=True))
    for be in (plain, random_tokens):
        be.clock.freeze(1_700_000_000)
    assert plain.new_batch_id("demo") == random_tokens.new_batch_id("demo")


def test_random_tokens_is_a_setting_that_takes_a_boolean():
    be = MockBackend()
    be.configure(random_tokens=True)
    assert be.settings()["random_tokens"] is True
    with pytest.raises(ValueError, match="random_tokens takes true or false"):
        be.configure(random_tokens="yes")


@pytest.mark.slow
def test_the_server_beyond_loopback_draws_tokens_at_random_and_says_so():
    seeded = MockBackend(MockConfig(seed=0)).issue_token("demo").value
    with serving("--host", "0.0.0.0") as server:
        url = server.url.replace("0.0.0.0", "127.0.0.1")
        token = requests.get(url + TOKEN, timeout=5).json()["accessToken"]
        server.proc.terminate()
        server.proc.wait(10)
        assert server.proc.stderr is not None
        stderr = server.proc.stderr.read()
    assert token != seeded
    assert "profile API tokens are drawn at random (give --seed to make them repeat)" in stderr
    with serving("--host", "0.0.0.0", "--seed", "0") as server:
        url = server.url.replace("0.0.0.0", "127.0.0.1")
        assert requests.get(url + TOKEN, timeout=5).json()["accessToken"] == seeded
