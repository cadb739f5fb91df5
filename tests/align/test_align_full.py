"""The proof runs (`make test-full`): each CPU recipe, about 10 minutes on SmolLM2-135M-Instruct, must raise the
held-out mean of its training reward over the base policy while the KL to the base stays bounded."""

from __future__ import annotations

import pytest

from realm_cli.recipes import runner


@pytest.mark.full
@pytest.mark.parametrize("algo", ["dpo", "ppo", "rs", "grpo"])
def test_cpu_recipe_aligns_on_held_out_prompts(tmp_path, algo):
    from conftest import shared_file

    shared_file("hh-rlhf/helpful-base_test.jsonl.gz")
    metrics = runner.run("align", f"align-{algo}-smollm2-cpu", [f"output_dir={tmp_path}", "trainer.cpu_threads=1"])
    heldout = metrics["heldout"]
    train = heldout[metrics["reward"]]
    assert train["aligned_mean"] > train["base_mean"]
    assert 0.0 <= heldout["heldout_kl_to_base"] < 10.0
