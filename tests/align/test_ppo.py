"""PPO (realm_cli.align.ppo): the pieces against hand-computed values, then the known behaviour on a toy reward."""

from __future__ import annotations

import math

import pytest
import torch
from support.align_toys import char_llama_dir, one_thread  # noqa: F401 - fixtures

from realm_cli.align.ppo import KlController, PpoSettings, RunningMoments, gae, policy_loss, token_rewards, value_loss


def test_gae_matches_hand_computation():
    rewards = torch.tensor([0.0, 0.0, 1.0])
    values = torch.tensor([0.5, 0.25, 0.5])
    adv, ret = gae(rewards, values, gamma=1.0, lam=1.0)
    # lam = 1: advantage = (sum of future rewards) - V(s_t), the value after the last token being 0
    assert adv.tolist() == pytest.approx([0.5, 0.75, 0.5])
    assert ret.tolist() == pytest.approx([1.0, 1.0, 1.0])
    adv0, _ = gae(rewards, values, gamma=0.9, lam=0.0)
    # lam = 0: one-step TD errors r_t + gamma V(s_t+1) - V(s_t)
    assert adv0.tolist() == pytest.approx([0.9 * 0.25 - 0.5, 0.9 * 0.5 - 0.25, 1.0 - 0.5])


def test_token_rewards_put_the_score_on_the_last_token_and_the_kl_penalty_on_every_token():
    logp = torch.tensor([-1.0, -2.0, -0.5])
    ref = torch.tensor([-1.5, -2.0, -1.0])
    r = token_rewards(2.0, logp, ref, kl_coef=0.1)
    assert r.tolist() == pytest.approx([-0.05, 0.0, 2.0 - 0.05])


def test_policy_loss_clips_the_ratio_and_value_loss_clips_the_prediction():
    old = torch.zeros(2)
    new = torch.log(torch.tensor([1.5, 0.5])).requires_grad_()
    adv = torch.tensor([1.0, -1.0])
    loss, clipfrac = policy_loss(new, old, adv, clip_range=0.2)
    # both ratios are outside [0.8, 1.2] on the side the advantage favours: pessimistic min takes the clipped value
    assert loss.item() == pytest.approx(-(1.0 * 1.2 + -1.0 * 0.8) / 2)
    assert clipfrac.item() == 1.0
    loss.backward()
    assert new.grad.abs().sum().item() == 0.0  # clipped terms pass no gradient
    v = value_loss(torch.tensor([2.0]), torch.tensor([0.0]), torch.tensor([1.0]), clip_range_value=0.2)
    # unclipped error (2-1)^2 = 1, clipped prediction 0.2 -> (0.2-1)^2 = 0.64: the max is kept
    assert v.item() == pytest.approx(0.5)


def test_running_moments_equal_the_statistics_of_all_batches_seen():
    torch.manual_seed(0)
    a, b = torch.randn(7) * 3 + 1, torch.randn(11) - 2
    m = RunningMoments()
    m.update(a)
    m.update(b)
    both = torch.cat([a, b])
    assert m.mean == pytest.approx(both.mean().item(), abs=1e-5)
    assert m.std == pytest.approx(both.std(unbiased=False).item(), abs=1e-5)


def test_adaptive_kl_coefficient_moves_towards_the_target_and_fixed_stays():
    adaptive = KlController(PpoSettings(kl_coef=0.1, adaptive_kl=True, target_kl=4.0, kl_horizon=100))
    adaptive.update(kl=8.0, n_samples=10)  # KL above target: penalise more
    assert adaptive.value == pytest.approx(0.1 * (1 + 0.2 * 10 / 100))
    adaptive.update(kl=1.0, n_samples=10)  # far below target: penalise less (error clipped at -0.2)
    assert adaptive.value < 0.1 * (1 + 0.2 * 10 / 100)
    fixed = KlController(PpoSettings(kl_coef=0.1))
    fixed.update(kl=100.0, n_samples=10)
    assert fixed.value == 0.1


def _ppo_run(model_dir, kl_coef: float, steps: int = 10):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from support.align_toys import LetterReward
    from realm_cli.align import sampling as generation
    from realm_cli.align import policy
    from realm_cli.align.ppo import PpoLearner, Rollout

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    prompts = [[{"role": "user", "content": w}] for w in "hello world how are you today tell me".split()]
    settings = generation.Sampling(max_new_tokens=12, temperature=1.0, top_p=1.0, batch_size=64)
    learner = PpoLearner(model, policy.Reference(model), tok.pad_token_id,
                         PpoSettings(minibatch_size=16, ppo_epochs=2, kl_coef=kl_coef), learning_rate=1e-2)
    reward = LetterReward()
    history = []
    for _ in range(steps):
        out = generation.sample(model, tok, prompts, k=4, settings=settings)
        scores = reward.score([prompts[i] for i in out.prompt_index], out.texts)
        history.append(learner.step(Rollout(out.query_ids, out.response_ids, scores)))
    return history


def test_ppo_raises_a_toy_reward_and_the_kl_penalty_bounds_the_drift(char_llama_dir, one_thread):
    free = _ppo_run(char_llama_dir, kl_coef=0.0)
    held = _ppo_run(char_llama_dir, kl_coef=0.5)
    first = lambda h: sum(s["reward"] for s in h[:2]) / 2  # noqa: E731
    last = lambda h: sum(s["reward"] for s in h[-2:]) / 2  # noqa: E731
    assert last(free) > first(free) + 0.2  # the policy learns to write 'a'
    assert last(held) > first(held)  # still learns under the penalty
    assert all(math.isfinite(s["kl"]) for s in held)
    assert held[-1]["kl"] < free[-1]["kl"] / 2  # the KL term keeps it near the reference
    assert max(s["kl"] for s in held) < 5.0
