"""`realm serve` over real HTTP on 127.0.0.1 with the packaged MiniLM embedding reward: auth, limits, 32 concurrent
clients scored exactly as direct scoring, and internal errors that never turn into scores."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from realm_cli.contracts import Reward, ScoreBatch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    token_file = tmp_path_factory.mktemp("serve") / "token"
    token_file.write_text("t0ken-abc\n")
    port = free_port()
    cmd = [sys.executable, "-m", "realm_cli.cli", "serve", "--reward", "embedding", "reward.batch_size=16",
           "--port", str(port), "--token-file", str(token_file), "--max-body-mb", "0.01", "--max-batch", "8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"realm serve exited: {proc.stdout.read()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("realm serve did not come up")
    yield url, {"Authorization": "Bearer t0ken-abc"}
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def direct():
    from realm_cli.rewards.embedding import EmbeddingReward

    return EmbeddingReward()


def test_scoring_needs_the_token(server):
    url, auth = server
    body = {"items": [{"prompt": "hi", "response": "hello"}]}
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    assert httpx.post(f"{url}/score", json=body).status_code == 401
    assert httpx.post(f"{url}/score", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.post(f"{url}/get_reward", json={"query": ["hi there"], "prompts": ["hi"]}).status_code == 401
    assert httpx.post(f"{url}/score", json=body, headers=auth).status_code == 200
    for scheme in ("bearer", "BEARER", "BeArEr"):  # RFC 7235: the auth scheme is case-insensitive
        assert httpx.post(f"{url}/score", json=body, headers={"Authorization": f"{scheme} t0ken-abc"}).status_code == 200


def test_a_request_naming_another_host_is_refused(server):
    """DNS rebinding: a page served from evil.example that rebinds its name to 127.0.0.1 sends Host: evil.example."""
    url, auth = server
    body = {"items": [{"prompt": "hi", "response": "hello"}]}
    r = httpx.post(f"{url}/score", json=body, headers={**auth, "Host": "evil.example"})
    assert r.status_code == 421 and "--allowed-host" in r.json()["detail"]
    assert httpx.get(f"{url}/health", headers={"Host": "evil.example:8000"}).status_code == 421
    port = url.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert httpx.post(f"{url}/score", json=body, headers={**auth, "Host": host}).status_code == 200, host


def test_health_is_not_ok_while_every_scoring_call_fails():
    from fastapi.testclient import TestClient

    from realm_cli.rewards.server import ServeSettings, build_app

    with TestClient(build_app(Broken(), "broken"), base_url="http://localhost") as client:
        assert client.get("/health").status_code == 200  # nothing has failed yet
        for _ in range(2):
            client.post("/score", json={"items": [{"prompt": "p", "response": "boom"}]})
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "failing"
        assert "model exploded" in health.json()["last_error"]
        client.post("/score", json={"items": [{"prompt": "p", "response": "fine"}]})
        assert client.get("/health").json()["status"] == "ok"  # recovered
    app = build_app(Broken(), "broken", ServeSettings(allowed_hosts=("rm.internal",)))
    with TestClient(app, base_url="http://rm.internal:9000") as client:
        assert client.get("/health").status_code == 200
    with TestClient(app, base_url="http://localhost") as client:
        assert client.get("/health").status_code == 421


def test_oversize_body_and_batch_are_rejected_with_a_message(server):
    url, auth = server
    big = {"items": [{"prompt": "p", "response": "x" * 20000}]}
    r = httpx.post(f"{url}/score", json=big, headers=auth)
    assert r.status_code == 413 and "exceeds the limit" in r.json()["detail"]
    many = {"items": [{"prompt": "p", "response": str(i)} for i in range(9)]}
    r = httpx.post(f"{url}/score", json=many, headers=auth)
    assert r.status_code == 422 and "limit of 8" in r.json()["detail"]
    r = httpx.post(f"{url}/score", json={"items": [{"prompt": "p"}]}, headers=auth)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "response"
    # curl -d without -H 'Content-Type: application/json' sends the JSON as a form: the error says which header
    r = httpx.post(f"{url}/score", content=json.dumps(body := {"items": [{"prompt": "p", "response": "r"}]}),
                   headers={**auth, "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 422 and "Content-Type: application/json" in r.json()["detail"][0]["msg"]
    assert httpx.post(f"{url}/score", json=body, headers=auth).status_code == 200
    r = httpx.post(f"{url}/get_reward", json={"query": ["abc"]}, headers=auth)  # plain text: no response in it
    assert r.status_code == 422 and "query[0]" in r.json()["detail"] and "assistant turn" in r.json()["detail"]
    r = httpx.post(f"{url}/get_reward", json={"query": ["a b"], "prompts": ["a", "b"]}, headers=auth)
    assert r.status_code == 422 and "'prompts' has 2 entries for 1 queries" in r.json()["detail"]


def test_32_concurrent_clients_get_direct_scores(server, direct):
    url, auth = server
    requests = [[{"prompt": f"How do I fix problem {i}?", "response": f"Try step {j} for problem {i}."}
                 for j in range(3)] for i in range(32)]
    calls_before = httpx.get(f"{url}/health").json()["model_calls"]

    def post(items):
        with httpx.Client(timeout=120) as client:
            return client.post(f"{url}/score", json={"items": items}, headers=auth).json()["scores"]

    with ThreadPoolExecutor(32) as pool:
        served = list(pool.map(post, requests))
    health = httpx.get(f"{url}/health").json()
    flat = [item for items in requests for item in items]
    expected = direct.score([[{"role": "user", "content": x["prompt"]}] for x in flat], [x["response"] for x in flat])
    got = [s for scores in served for s in scores]
    assert got == pytest.approx(expected, abs=1e-5)
    assert health["model_calls"] - calls_before < 32  # concurrent requests shared model calls


def test_get_reward_is_openrlhf_compatible(server, direct):
    url, auth = server
    prompts = ["What is the capital of France?", "Name a prime number."]
    responses = [" Paris is the capital of France.", " Seven."]
    body = {"query": [p + r for p, r in zip(prompts, responses)], "prompts": prompts, "labels": ["", ""]}
    result = httpx.post(f"{url}/get_reward", json=body, headers=auth).json()
    expected = direct.score([[{"role": "user", "content": p}] for p in prompts], responses)
    assert result["rewards"] == pytest.approx(expected, abs=1e-5)


class Broken(Reward):
    def score_batch(self, prompts, responses):
        if any("boom" in r for r in responses):
            raise RuntimeError("model exploded")
        if any("short" in r for r in responses):
            return ScoreBatch([1.0] * (len(responses) - 1))
        scores = [float("nan") if r == "unscorable" else float(len(r)) for r in responses]
        return ScoreBatch(scores, {"echo": list(scores)})


def test_internal_errors_are_500_never_a_score():
    from fastapi.testclient import TestClient

    from realm_cli.rewards.server import build_app

    with TestClient(build_app(Broken(), "broken"), base_url="http://localhost") as client:
        ok = client.post("/score", json={"items": [{"prompt": "p", "response": "abcd"}]})
        assert ok.json()["scores"] == [4.0]
        nan = client.post("/score", json={"items": [{"prompt": "p", "response": "unscorable"}]}).json()
        assert nan == {"scores": [None], "extras": {"echo": [None]}}  # on_error=nan rewards: null, not 0.0
        for bad in ("boom", "short"):
            r = client.post("/score", json={"items": [{"prompt": "p", "response": bad}]})
            assert r.status_code == 500 and "reward failed" in r.json()["detail"] and "scores" not in r.json()
        assert client.get("/health").json()["failed_calls"] == 2


def test_serve_refuses_public_host_without_token():
    from typer.testing import CliRunner

    from realm_cli.cli import build_app

    result = CliRunner().invoke(build_app(), ["serve", "--reward", "embedding", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "--token-file" in result.output


def test_a_bad_or_busy_port_is_one_line_before_the_model_loads():
    from typer.testing import CliRunner

    from realm_cli.cli import build_app

    # the bt reward on a missing model would fail to load: the port error must come first
    args = ["serve", "--reward", "bt", "reward.model=/no/such/model"]
    result = CliRunner().invoke(build_app(), [*args, "--port", "99999"])
    assert result.exit_code == 2 and "0 to 65535" in result.output and "/no/such" not in result.output
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = CliRunner().invoke(build_app(), [*args, "--port", str(busy.getsockname()[1])])
    assert result.exit_code == 2 and "cannot listen there" in result.output and "Traceback" not in result.output


class EchoLabel(Reward):
    """Scores 1 when the response contains the sample's label: a reward that reads labels."""

    uses_labels = True

    def score_batch(self, prompts, responses, labels=None):
        labels = labels or [None] * len(responses)
        return ScoreBatch([float(label is not None and str(label) in r) for r, label in zip(responses, labels)],
                          {"length": [len(r) for r in responses]})


def test_openrlhf_payloads_of_two_templates_score_as_realm_score_does(direct, smollm2_dir):
    """Payloads built as OpenRLHF's trainer builds them (templated, special tokens kept; with and without "prompts")
    get the rewards `realm score` gives the same conversation."""
    from fastapi.testclient import TestClient
    from transformers import AutoTokenizer

    from realm_cli.rewards.server import build_app
    from support.templates import LLAMA3, SPECIALS

    conversation = [{"role": "user", "content": "How do I boil an egg?"}, {"role": "assistant", "content": "Water."},
                    {"role": "user", "content": "And how long for a soft one?"}]
    responses = ["About six minutes in boiling water.", "Paris is the capital of France."]
    chatml = AutoTokenizer.from_pretrained(smollm2_dir)
    llama3 = AutoTokenizer.from_pretrained(smollm2_dir)
    llama3.add_special_tokens({"additional_special_tokens": SPECIALS["llama3"]})
    llama3.chat_template = LLAMA3
    expected = direct.score([conversation] * 2, responses)
    with TestClient(build_app(direct, "embedding"), base_url="http://localhost") as client:
        for tok, eos in ((chatml, "<|im_end|>"), (llama3, "<|eot_id|>")):
            prompt = tok.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
            queries = [tok.decode(tok(prompt + r + eos, add_special_tokens=False)["input_ids"],
                                  skip_special_tokens=False) for r in responses]
            for body in ({"query": queries, "prompts": [prompt] * 2, "labels": ["", ""]}, {"query": queries}):
                result = client.post("/get_reward", json=body).json()
                assert result["rewards"] == pytest.approx(expected, abs=1e-5), (tok.chat_template[:20], body.keys())
                assert all(0 < x < 1 for x in result["scores"]) and isinstance(result["extra_logs"], dict)
            text = client.post("/pooling", json={"model": "rm", "input": queries}).json()
            assert [d["data"][0] for d in text["data"]] == pytest.approx(expected, abs=1e-5)
            assert text["model"] == "rm" and [d["index"] for d in text["data"]] == [0, 1]


def test_vllm_chat_messages_and_labels_reach_the_reward():
    from fastapi.testclient import TestClient

    from realm_cli.rewards.server import build_app

    with TestClient(build_app(EchoLabel(), "echo"), base_url="http://localhost") as client:
        messages = [{"role": "user", "content": "say 42"}, {"role": "assistant", "content": "it is 42"}]
        out = client.post("/classify", json={"messages": messages}).json()
        assert out["data"] == [{"index": 0, "label": "LABEL_0", "probs": [0.0], "num_classes": 1}]  # no label here
        r = client.post("/pooling", json={"messages": messages[:1]})
        assert r.status_code == 422 and "assistant turn" in r.json()["detail"]
        assert client.post("/pooling", json={"input": "x", "messages": messages}).status_code == 422
        body = {"query": ["\n\nHuman: say 42\n\nAssistant: it is 42", "\n\nHuman: say 7\n\nAssistant: no"],
                "labels": ["42", "7"]}
        result = client.post("/get_reward", json=body).json()
        assert result["rewards"] == [1.0, 0.0] and result["extra_logs"] == {"length": [8, 2]}

