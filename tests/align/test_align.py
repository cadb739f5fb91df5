"""`realm align` mechanics on a tiny character-level chat model and toy rewards: each algorithm trains, reports,
saves a loadable policy; resume continues; unscorable samples are counted; bad input fails clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from support.align_toys import FlakyReward, build_char_llama, char_llama_dir, install, one_thread  # noqa: F401 - fixtures

from realm_cli.recipes import runner
from realm_cli.errors import RealmError

PROMPTS = ["hello there", "how are you", "tell me a joke", "name a color", "say hi", "why is the sky blue",
           "write a poem", "good morning", "what is up", "bye now"]


def write_recipe(tmp_path, model_dir, algo="dpo", reward="letter-a", **trainer) -> str:
    options = dict(rounds=1, k=2, prompts_per_round=4, heldout=2, heldout_samples=1, max_new_tokens=8,
                   batch_size=16, learning_rate=1e-2, train_batch_size=4, prompts=PROMPTS, temperature=1.0,
                   top_p=1.0, bf16=False)
    options.update(trainer)
    recipe = {"command": "align", "output_dir": str(tmp_path / "out"), "model": {"name": model_dir},
              "trainer": {"name": algo, **options}}
    if reward is not None:
        recipe["reward"] = {"name": reward}
    path = tmp_path / f"align-{algo}-test.yaml"
    path.write_text(f"# realm align --recipe {path}\n" + yaml.safe_dump(recipe))
    return str(path)


@pytest.fixture
def toys(fresh_plugins, one_thread):
    install(fresh_plugins)


def test_dpo_round_lowers_the_dpo_loss_and_writes_the_report_and_a_loadable_policy(tmp_path, char_llama_dir, toys):
    from transformers import AutoModelForCausalLM

    metrics = runner.run("align", write_recipe(tmp_path, char_llama_dir, epochs=4, k=4), [])
    out = tmp_path / "out"
    history = json.loads((out / "history.json").read_text())
    assert history and {"reward", "kl", "length"} <= set(history[0])
    assert metrics["heldout"]["letter-a"]["win_rate"] >= 0.0
    rows = [json.loads(line) for line in (out / "heldout.jsonl").read_text().splitlines()]
    assert {r["policy"] for r in rows} == {"base", "aligned"} and all("letter-a" in r["rewards"] for r in rows)
    assert (out / "reward_kl.png").stat().st_size > 1000
    assert AutoModelForCausalLM.from_pretrained(out / "policy") is not None
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["skipped"]["unscored_samples"] == 0


def test_dpo_loss_decreases_over_a_round(tmp_path, char_llama_dir, toys, capsys):
    from realm_cli.align.dpo import DpoAligner

    losses = []
    original = DpoAligner._dpo

    def spy(self, pairs, round_index):
        result = original(self, pairs, round_index)
        losses.extend(result)
        return result

    DpoAligner._dpo = spy
    try:
        runner.run("align", write_recipe(tmp_path, char_llama_dir, epochs=4, k=4, train_batch_size=4), [])
    finally:
        DpoAligner._dpo = original
    assert len(losses) >= 3
    assert losses[-1] < losses[0]


def test_resume_continues_after_the_last_finished_round(tmp_path, char_llama_dir, toys):
    recipe = write_recipe(tmp_path, char_llama_dir, algo="ppo", k=2, steps_per_round=2, prompts_per_step=4)
    first = runner.run("align", recipe, [])
    assert (tmp_path / "out" / "checkpoints" / "round-1" / "state.pt").exists()
    history_1 = json.loads((tmp_path / "out" / "history.json").read_text())
    second = runner.run("align", recipe, ["trainer.rounds=2"], resume=True)
    history_2 = json.loads((tmp_path / "out" / "history.json").read_text())
    assert len(history_1) == 2 and len(history_2) == 4
    assert history_2[:2] == history_1  # the first round is kept, not redone
    assert (tmp_path / "out" / "checkpoints" / "round-2" / "state.pt").exists()
    assert second["heldout"]["letter-a"]["base_mean"] == first["heldout"]["letter-a"]["base_mean"]


def test_rejection_sampling_counts_and_excludes_samples_the_reward_cannot_score(tmp_path, char_llama_dir, toys):
    metrics = runner.run("align", write_recipe(tmp_path, char_llama_dir, algo="rs", reward="flaky", k=4,
                                               max_new_tokens=16), [])
    assert metrics["skipped"]["unscored_samples"] > 0
    kept = json.loads((tmp_path / "out" / "history.json").read_text())
    assert all(isinstance(h["reward"], float) for h in kept)


@pytest.mark.parametrize("algo", ["grpo", "rloo"])
def test_trl_group_algorithms_train_on_the_wrapped_reward(tmp_path, char_llama_dir, toys, algo):
    metrics = runner.run("align", write_recipe(tmp_path, char_llama_dir, algo=algo, reward="flaky", k=2,
                                               max_new_tokens=16), [])
    history = json.loads((tmp_path / "out" / "history.json").read_text())
    assert history and all("reward" in h for h in history)
    assert metrics["skipped"]["unscored_samples"] > 0  # 'q'/'z' samples went to TRL as None and were counted


@pytest.mark.parametrize("algo", ["grpo", "rloo"])
def test_lora_group_algorithms_run_several_rounds(tmp_path, char_llama_dir, toys, algo):
    # each round is a new TRL trainer, which adds its own "ref" adapter: round 2 must not collide with round 1's
    recipe = write_recipe(tmp_path, char_llama_dir, algo=algo, rounds=2, k=2, max_new_tokens=8)
    runner.run("align", recipe, ["model.lora.r=4", "model.lora.target_modules=all-linear"])
    progress = json.loads((tmp_path / "out" / "checkpoints" / "round-2" / "progress.json").read_text())
    assert progress["round"] == 2
    adapter = json.loads((tmp_path / "out" / "policy" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(Path(char_llama_dir).resolve())  # a path the user gave


def test_a_lora_adapter_records_the_alias_it_was_trained_from_and_loads_offline(tmp_path, smollm2_dir):
    """Not the cache folder the alias resolved to on this machine: the adapter must travel."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from realm_cli.align import policy
    from realm_cli.evaluate.verify import check_model

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(smollm2_dir),
                           LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    out = policy.save(model, AutoTokenizer.from_pretrained(smollm2_dir), tmp_path / "policy",
                      base_name="smollm2-135m-instruct")
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "smollm2-135m-instruct"
    assert ".cache" not in json.dumps(config)
    check = check_model(out)
    assert check.ok, check.detail


def test_the_wrapped_reward_function_hands_trl_none_for_unscorable_samples(tmp_path, char_llama_dir, toys):
    from realm_cli.recipes import recipe as recipes
    from realm_cli.align.grpo import GrpoAligner

    recipe = recipes.load(write_recipe(tmp_path, char_llama_dir, algo="grpo", reward="flaky"))
    job = GrpoAligner(recipe, recipe.trainer.options)
    job.reward, job.skipped = FlakyReward(), {"unscored_samples": 0}
    f = job.reward_function()
    prompts = [[{"role": "user", "content": "x"}]] * 3
    out = f(prompts=prompts, completions=[[{"role": "assistant", "content": t}] for t in ["aa", "qa", "za"]])
    assert out == [1.0, None, None]
    assert job.skipped["unscored_samples"] == 2


def test_a_policy_without_a_chat_template_is_a_clear_error(tmp_path, toys):
    model = build_char_llama(tmp_path / "no-template", chat_template=False)
    with pytest.raises(RealmError, match="no chat template"):
        runner.run("align", write_recipe(tmp_path, model), [])


def test_an_empty_prompt_set_is_a_clear_error(tmp_path, char_llama_dir, toys):
    with pytest.raises(RealmError, match="no prompts"):
        runner.run("align", write_recipe(tmp_path, char_llama_dir, prompts=[]), [])
    with pytest.raises(RealmError, match="prompt set is empty"):
        runner.run("align", write_recipe(tmp_path, char_llama_dir, prompts=["", ""]), [])


def test_dpo_with_k_below_two_is_rejected_at_validation(tmp_path, char_llama_dir, toys):
    with pytest.raises(RealmError, match="k must be at least 2 for dpo"):
        runner.run("align", write_recipe(tmp_path, char_llama_dir, k=1), [])


def test_an_online_algorithm_without_a_reward_says_how_to_give_one(tmp_path, char_llama_dir, toys):
    with pytest.raises(RealmError, match="needs a reward: pass --reward"):
        runner.run("align", write_recipe(tmp_path, char_llama_dir, algo="ppo", reward=None), [])


def test_lora_dpo_runs_several_rounds_and_saves_a_merged_policy(tmp_path, char_llama_dir, toys):
    from transformers import AutoModelForCausalLM

    recipe = write_recipe(tmp_path, char_llama_dir, rounds=2, k=4, merge_lora=True)
    metrics = runner.run("align", recipe, ["model.lora.r=4", "model.lora.target_modules=all-linear"])
    assert metrics["steps"] == 2
    assert not (tmp_path / "out" / "policy" / "adapter_config.json").exists()  # merged: a plain model
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "policy") is not None


def test_a_logged_run_shows_every_phase_as_plain_lines(tmp_path, char_llama_dir, toys, capsys):
    """`realm align > log 2>&1` used to print nothing for minutes: each phase now ends with a line, counts and rates."""
    runner.run("align", write_recipe(tmp_path, char_llama_dir, k=2), [])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(("held-out:", "round 1/1:"))]
    text = "\n".join(lines)
    assert "held-out: base policy: answering 2 held-out prompts" in text
    assert "round 1/1: sampling 2 responses for each of 4 prompts" in text
    assert "round 1/1: sampled 8 responses (" in text and "tokens/s" in text
    assert "round 1/1: scored 8 responses in" in text
    assert "round 1/1: training step 1/" in text
    assert "held-out: aligned policy: 2 held-out answers scored" in text
    assert "\x1b[" not in text  # plain lines, no terminal escapes


def test_ppo_on_several_processes_is_refused_once_before_anything_is_launched(tmp_path, char_llama_dir, toys,
                                                                               monkeypatch):
    import subprocess

    monkeypatch.setattr(subprocess, "call", lambda *a, **k: pytest.fail("launched"))
    recipe = write_recipe(tmp_path, char_llama_dir, algo="ppo")
    with pytest.raises(RealmError, match=r"align with trainer 'ppo' runs in one process only; this recipe launches 2"):
        runner.run("align", recipe, ["launch.accelerate_config=multi_cpu", "launch.num_processes=2"])
    assert not (tmp_path / "out").exists()


def test_a_new_run_into_the_same_directory_with_another_reward_scores_its_base_answers_afresh(tmp_path, char_llama_dir,
                                                                                              toys):
    first = runner.run("align", write_recipe(tmp_path, char_llama_dir), [])
    second = runner.run("align", write_recipe(tmp_path, char_llama_dir, reward="flaky"), [])
    assert "letter-a" in first["heldout"] and "flaky" in second["heldout"] and "letter-a" not in second["heldout"]
