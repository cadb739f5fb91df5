"""`realm chat`: an align run's LoRA policy loaded on its base, the chat template applied, the history kept across
turns, /reset and /exit, replies streamed; clear errors for directories that hold no policy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from realm_cli.cli import build_app
from support.align_toys import build_char_llama


def _invoke(args):
    return CliRunner().invoke(build_app(), args, catch_exceptions=False)


@pytest.fixture(scope="module")
def align_run(tmp_path_factory, tiny_llama_dir):
    """What `realm align` leaves with LoRA: run/policy = adapter (+ tokenizer) over a base it names, metrics.json."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = tmp_path_factory.mktemp("align-run")
    torch.manual_seed(1)
    policy = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama_dir),
                            LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["q_proj", "v_proj"],
                                       init_lora_weights=False))  # non-zero adapter: it changes the replies
    policy.save_pretrained(run / "policy")
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(run / "policy")
    (run / "metrics.json").write_text(json.dumps({"heldout": {}}))
    return run


def _greedy(model_dir, messages, max_new_tokens):
    """The reference: plain transformers greedy decoding of the templated conversation."""
    import torch
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoPeftModelForCausalLM.from_pretrained(model_dir).eval()
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def test_chat_replies_with_the_adapter_and_keeps_the_history(align_run):
    from realm_cli.align import chat

    model, tok = chat.load(str(align_run), dtype="float32")
    assert hasattr(model, "peft_config")  # the adapter, on the base its adapter_config names
    session = chat.Chat(model, tok, system="Be brief.", max_new_tokens=6, temperature=0)
    pieces = list(session.stream("Hello there"))
    first = "".join(pieces).strip()
    first_prompt = session.prompt_tokens
    second = "".join(session.stream("And again?")).strip()
    assert len(pieces) > 1 and first  # streamed in pieces, not one string at the end
    # the second turn's input is the whole conversation: system, first question, first reply, second question
    assert session.prompt_tokens > first_prompt + len(tok(first, add_special_tokens=False)["input_ids"])
    assert [m["role"] for m in session.history] == ["user", "assistant", "user", "assistant"]
    assert session.messages()[0] == {"role": "system", "content": "Be brief."}
    policy = align_run / "policy"
    assert first == _greedy(policy, [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": "Hello there"}], 6)
    # the second reply is generated from the whole conversation, the first reply included
    assert second == _greedy(policy, [{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": "Hello there"},
                                      {"role": "assistant", "content": first},
                                      {"role": "user", "content": "And again?"}], 6)


def test_chat_message_flag_prints_one_reply_per_message(align_run):
    result = _invoke(["chat", str(align_run), "-m", "hi", "-m", "more", "--max-new-tokens", "4", "--temperature",
                      "0"])
    assert result.exit_code == 0, result.output
    assert result.output.count("\n") == 2  # one line per reply, nothing else on stdout


def test_chat_reads_turns_from_a_pipe_with_reset_and_exit(align_run, tmp_path):
    """A real `realm chat` process with stdin a pipe: /reset forgets (the same question gets the same greedy reply),
    /exit stops before the last line."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "realm_cli.cli", "chat", str(align_run), "--max-new-tokens", "5",
                           "--temperature", "0"], input="hi\n\nthen\n/reset\nhi\n/exit\nnever\n", text=True,
                          capture_output=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert lines[2] == "[conversation reset]", done.stdout
    assert lines[3] == lines[0]  # after /reset, "hi" is the first turn again
    assert len(lines) == 5 and lines[4] == ""  # 3 replies + the reset line; "never" was not answered


def test_chat_on_a_directory_without_a_policy_is_one_line(tmp_path, tiny_bert_dir):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("{}")
    result = _invoke(["chat", str(run), "-m", "hi"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {run}: a run directory with no policy (no policy/ folder, no config.json or adapter_config.json); "
        f"realm chat takes the output directory of `realm align` or a model directory"]
    rm = tmp_path / "rm"
    import shutil

    shutil.copytree(tiny_bert_dir, rm)
    (rm / "realm_rm.json").write_text("{}")
    result = _invoke(["chat", str(rm), "-m", "hi"])
    assert result.exit_code == 2 and "realm score --reward bt reward.model=" in result.output
    result = _invoke(["chat", str(tmp_path / "nope" / "x"), "-m", "hi"])
    assert result.exit_code == 2 and "no such local path" in result.output


def test_chat_with_a_model_without_chat_template_says_so(tmp_path):
    model = build_char_llama(tmp_path / "plain", chat_template=False)
    result = _invoke(["chat", model, "-m", "hi"])
    assert result.exit_code == 2 and "has no chat template" in result.output
