"""The nim reward against a fake NIM server on 127.0.0.1: exact scores, bounded concurrency, retries honouring
Retry-After, errors that are raised or recorded (never 0.0), the key from .env, and a cache that survives restarts."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.fake_nim import FakeNim, fake_reward
from realm_cli.config import from_dict
from realm_cli.errors import RealmError
from realm_cli.rewards.nim import NimError, parse_reward
from realm_cli.rewards.cache import cache_key
from realm_plugins.rewards.nim import NimConfig, NimReward



def make_reward(fake: FakeNim, tmp_path: Path, **options) -> NimReward:
    base = {"base_url": fake.base_url, "cache_path": str(tmp_path / "nim.sqlite"), "backoff_base": 0.01,
            "backoff_max": 0.05, "timeout": 0.5}
    return NimReward(from_dict(NimConfig, {**base, **options}))


def prompt(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def expected(p: str, r: str) -> float:
    return fake_reward([{"role": "user", "content": p}, {"role": "assistant", "content": r}])


def test_parse_reward_accepts_only_reward_float():
    ok = {"choices": [{"message": {"content": "reward:-18.125"}}]}
    assert parse_reward(ok) == -18.125
    for content in ["reward: banana", "-18.125", "reward:nan", "reward:-1 extra", ""]:
        with pytest.raises(NimError, match="malformed"):
            parse_reward({"choices": [{"message": {"content": content}}]})
    for body in [{}, {"choices": []}, {"choices": [{"message": {}}]}, "text"]:
        with pytest.raises(NimError, match="malformed"):
            parse_reward(body)


def test_scores_are_exact_and_concurrency_is_bounded(tmp_path):
    with FakeNim(latency=0.05) as fake:
        reward = make_reward(fake, tmp_path, concurrency=4)
        prompts = [prompt(f"question {i}") for i in range(24)]
        responses = [f"answer {i}" for i in range(24)]
        scores = reward.score(prompts, responses)
        assert scores == [expected(f"question {i}", f"answer {i}") for i in range(24)]
        assert 1 < fake.max_in_flight <= 4
        assert reward.stats()["cache_misses"] == 24 and reward.stats()["scored"] == 24
        reward.close()


def test_multi_turn_conversation_is_sent_whole(tmp_path):
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                    {"role": "user", "content": "and now?"}]
    with FakeNim() as fake:
        reward = make_reward(fake, tmp_path)
        [score] = reward.score([conversation], ["now this"])
        reward.close()
    assert score == fake_reward(conversation + [{"role": "assistant", "content": "now this"}])


def test_transient_faults_are_retried_to_the_right_score(tmp_path):
    responses = ["a [[fault:429]]", "b [[fault:500,500]]", "c [[fault:timeout]]", "d [[fault:429,timeout,500]]", "e"]
    with FakeNim(retry_after="0.4", stall=1.5) as fake:
        reward = make_reward(fake, tmp_path, timeout=0.3)
        scores = reward.score([prompt("q")] * len(responses), responses)
        stats = reward.stats()
        reward.close()
        gaps = {}
        for key, times in fake.attempts.items():
            gaps[key] = [b - a for a, b in zip(times, times[1:])]
    assert scores == [expected("q", r) for r in responses]
    assert stats["retries"] == 1 + 2 + 1 + 3 and stats["failed"] == 0
    key_429 = cache_key_for_fake("q", "a [[fault:429]]")
    # backoff_base is 0.01 s, so only Retry-After (0.4 s) explains a gap this long
    assert gaps[key_429][0] >= 0.35


def cache_key_for_fake(p: str, r: str) -> str:
    import hashlib

    messages = [{"role": "user", "content": p}, {"role": "assistant", "content": r}]
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("fault, message", [("500", "after 3 attempts: HTTP 500"), ("429", "after 3 attempts: HTTP 429"),
                                            ("timeout", "after 3 attempts: timeout"), ("text", "malformed"),
                                            ("json", "not JSON"), ("choices", "malformed")])
def test_permanent_failure_raises_never_zero(tmp_path, fault, message):
    with FakeNim(retry_after="0", stall=1.0) as fake:
        reward = make_reward(fake, tmp_path, max_retries=2, timeout=0.2)
        with pytest.raises(NimError, match=message):
            reward.score([prompt("q"), prompt("q")], ["fine", f"bad [[always:{fault}]]"])
        attempts = {len(t) for t in fake.attempts.values()}
        reward.close()
    retryable = fault in ("500", "429", "timeout")
    assert attempts == ({1, 3} if retryable else {1})  # malformed answers are not retried


def test_on_error_nan_records_and_counts(tmp_path):
    responses = ["ok 1", "x [[always:500]]", "ok 2 [[fault:429]]", "y [[always:text]]", "ok 3"]
    with FakeNim(retry_after="0") as fake:
        reward = make_reward(fake, tmp_path, max_retries=1, on_error="nan")
        batch = reward.score_batch([prompt("q")] * 5, responses)
        stats = reward.stats()
        reward.close()
    for score, error, response in zip(batch.scores, batch.extras["error"], responses):
        if "always" in response:
            assert math.isnan(score) and error and "NIM" in error
        else:
            assert score == expected("q", response) and error is None
    assert stats["nan"] == 2 and stats["failed"] == 2


def test_failed_samples_are_not_cached_but_good_ones_are(tmp_path):
    with FakeNim(retry_after="0") as fake:
        reward = make_reward(fake, tmp_path, max_retries=0, on_error="nan")
        reward.score([prompt("q")] * 2, ["good", "bad [[fault:500]]"])  # the 500 happens once only
        again = reward.score([prompt("q")] * 2, ["good", "bad [[fault:500]]"])
        stats = reward.stats()
        reward.close()
    assert again == [expected("q", "good"), expected("q", "bad [[fault:500]]")]
    assert stats["cache_hits"] == 1 and fake.requests == 3


def test_cache_key_is_stable_across_processes():
    messages = [{"role": "user", "content": "héllo"}, {"role": "assistant", "content": "hi"}]
    code = ("import json,sys; from realm_cli.rewards.cache import cache_key; "
            "print(cache_key('http://h/v1', 'm', json.loads(sys.argv[1])))")
    keys = {subprocess.run([sys.executable, "-c", code, json.dumps(messages)], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip() for seed in ("1", "2")}
    assert keys == {cache_key("http://h/v1", "m", messages)}
    assert cache_key("http://h/v1", "m", messages) != cache_key("http://h/v1", "other-model", messages)
    assert cache_key("http://h/v1", "m", messages) != cache_key("http://staging/v1", "m", messages)
    assert cache_key("http://h/v1/", "m", messages) == cache_key("http://h/v1", "m", messages)


def test_another_endpoint_with_the_same_model_name_does_not_get_the_cached_scores(tmp_path):
    """Two deployments behind one model name answer differently; a shared cache must not hand one's scores out as
    the other's."""
    with FakeNim() as first, FakeNim() as second:
        reward = make_reward(first, tmp_path)
        reward.score([prompt("q")], ["a"])
        reward.close()
        reward = make_reward(second, tmp_path)  # same cache file, same model name, other base_url
        reward.score([prompt("q")], ["a"])
        stats = reward.stats()
        reward.close()
    assert stats["cache_hits"] == 0 and stats["cache_misses"] == 1 and second.requests == 1


def test_cache_survives_a_process_restart(tmp_path):
    pairs = [(f"p{i}", f"r{i}") for i in range(10)]
    script = ("import json,sys; from realm_plugins.rewards.nim import NimReward, NimConfig; "
              "r = NimReward(NimConfig(base_url=sys.argv[1], cache_path=sys.argv[2])); "
              "pairs = json.loads(sys.argv[3]); "
              "s = r.score([[{'role':'user','content':p}] for p, _ in pairs], [a for _, a in pairs]); "
              "print(json.dumps({'scores': s, 'stats': r.stats()}))")
    with FakeNim() as fake:
        runs = []
        for _ in range(2):
            out = subprocess.run([sys.executable, "-c", script, fake.base_url, str(tmp_path / "c.sqlite"),
                                  json.dumps(pairs)], capture_output=True, text=True, check=True, cwd=tmp_path)
            runs.append((json.loads(out.stdout), fake.requests))
    (first, requests_after_first), (second, requests_after_second) = runs
    assert first["scores"] == second["scores"] == [expected(p, r) for p, r in pairs]
    assert first["stats"]["cache_misses"] == 10 and requests_after_first == 10
    assert second["stats"]["cache_hits"] == 10 and requests_after_second == 10  # nothing new was sent


def test_api_key_from_dotenv_is_sent_and_never_shown(tmp_path, monkeypatch):
    monkeypatch.delenv("NVIDIA_NIM_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("NVIDIA_NIM_API_KEY=sekret-123\n")
    with FakeNim(api_key="sekret-123") as fake:
        reward = make_reward(fake, tmp_path)
        assert reward.score([prompt("q")], ["a"]) == [expected("q", "a")]
        assert "sekret" not in repr(reward.client)
        reward.close()
        (tmp_path / ".env").write_text("NVIDIA_NIM_API_KEY=wrong-456\n")
        reward = make_reward(fake, tmp_path, cache=False)
        with pytest.raises(NimError, match="NVIDIA_NIM_API_KEY") as info:
            reward.score([prompt("q")], ["a"])
        assert "wrong-456" not in str(info.value)
        reward.close()


def test_hosted_api_without_key_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("NVIDIA_NIM_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RealmError, match="NVIDIA_NIM_API_KEY"):
        NimReward(NimConfig(cache=False))


def test_a_server_that_echoes_the_authorization_header_cannot_leak_the_key(tmp_path, monkeypatch, capsys):
    """A 400 whose body quotes our request headers (some proxies do) must not put the key into the error, the output
    file or stderr."""
    from typer.testing import CliRunner

    from realm_cli.cli import build_app

    key = "nvapi-SEKRET-abc123"
    monkeypatch.setenv("NVIDIA_NIM_API_KEY", key)
    with FakeNim(api_key=key) as fake:
        reward = make_reward(fake, tmp_path, cache=False)
        with pytest.raises(NimError) as info:
            reward.score([prompt("q")], ["a [[always:echo]]"])
        reward.close()
        assert "HTTP 400" in str(info.value) and key not in str(info.value) and "SEKRET" not in str(info.value)
        rows = tmp_path / "in.jsonl"
        rows.write_text(json.dumps({"prompt": "q", "response": "a [[always:echo]]"}) + "\n")
        out = tmp_path / "out.jsonl"
        result = CliRunner().invoke(build_app(), ["score", "--reward", "nim", f"reward.base_url={fake.base_url}",
                                                  "reward.cache=false", "reward.on_error=nan", "--input", str(rows),
                                                  "--output", str(out)])
    written = out.read_text() if out.exists() else ""
    shown = result.output + capsys.readouterr().err
    assert "HTTP 400" in written + shown, (written, shown)
    assert "SEKRET" not in written and "SEKRET" not in shown


def test_redact_hides_given_secrets_and_any_bearer_token():
    from realm_cli.errors import excerpt, redact

    text = 'echo {"Authorization": "Bearer abc.DEF-123", "x": "bearer zzz", "k": "my-key"}'
    assert redact(text, "my-key") == 'echo {"Authorization": "Bearer ***", "x": "bearer ***", "k": "***"}'
    assert excerpt("one two three four", 9) == "one two …" and excerpt("short", 9) == "short"



def test_connections_are_reused_across_requests(tmp_path):
    with FakeNim() as fake:
        reward = make_reward(fake, tmp_path, cache=False, concurrency=4)
        reward.score([prompt(f"q{i}") for i in range(40)], ["a"] * 40)
        reward.close()
    assert fake.requests == 40 and 1 <= fake.connections <= 4  # keep-alive: not one connection per request
