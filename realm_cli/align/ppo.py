"""PPO for language models, written here on torch because TRL 1.x removed its PPOTrainer.

One PPO step (the Ziegler et al. 2019 / InstructGPT recipe, as the old TRL PPOTrainer did it):
1. rollout: sample a response per prompt from the policy (KV-cache generation), decode it, score the text with the
   reward (so reward model and policy need not share a tokenizer). Unscorable samples are dropped from the batch.
2. the score is whitened with running statistics and clipped to [-clip, clip];
3. per-token reward r_t = -kl_coef * (log pi(y_t) - log ref(y_t)), plus the score on the last token;
4. advantages by GAE(gamma, lam) against a value head on the policy's last hidden state, whitened per batch;
5. a few epochs of minibatch updates of the clipped policy loss + vf_coef * clipped value loss;
6. the KL coefficient is fixed, or adapted towards ``target_kl`` (proportional controller of Ziegler et al.).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from realm_cli.align.job import AlignJob, AlignOptions


@dataclass
class PpoSettings:
    ppo_epochs: int = 2
    minibatch_size: int = 8
    clip_range: float = 0.2  # policy ratio clip
    clip_range_value: float = 0.2  # value prediction clip around the rollout's value
    vf_coef: float = 0.1
    gamma: float = 1.0
    lam: float = 0.95
    kl_coef: float = 0.05
    adaptive_kl: bool = False
    target_kl: float = 6.0  # nats per sequence, for the adaptive controller
    kl_horizon: int = 10000  # samples over which the controller closes the gap
    whiten_rewards: bool = True
    reward_clip: float = 5.0
    max_grad_norm: float = 1.0


def value_head(hidden_size: int):
    """A linear critic on the policy's last hidden state, zero-initialised so early values do not swamp GAE."""
    from torch import nn

    head = nn.Linear(hidden_size, 1)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


class RunningMoments:
    """Running mean/std of scores across steps (Chan et al. parallel update), for reward whitening."""

    def __init__(self):
        self.mean, self.var, self.count = 0.0, 1.0, 0

    def update(self, xs) -> None:
        n = xs.numel()
        if n == 0:
            return
        batch_mean, batch_var = xs.mean().item(), xs.var(unbiased=False).item()
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self.var = (self.var * self.count + batch_var * n + delta ** 2 * self.count * n / total) / total
        self.count = total

    @property
    def std(self) -> float:
        return math.sqrt(max(self.var, 1e-8))

    def state_dict(self) -> dict:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.var, self.count = state["mean"], state["var"], state["count"]


class KlController:
    """Fixed coefficient, or the adaptive one: beta *= 1 + clip(kl / target - 1, -0.2, 0.2) * n / horizon."""

    def __init__(self, settings: PpoSettings):
        self.value = settings.kl_coef
        self.settings = settings

    def update(self, kl: float, n_samples: int) -> None:
        if not self.settings.adaptive_kl or not math.isfinite(kl):
            return
        error = max(-0.2, min(0.2, kl / self.settings.target_kl - 1))
        self.value *= 1 + error * n_samples / self.settings.kl_horizon


def whiten(x, shift_mean: bool = True):
    if x.numel() < 2:
        return x - x.mean() if shift_mean else x
    white = (x - x.mean()) / (x.std(unbiased=False) + 1e-8)
    return white if shift_mean else white + x.mean()


def gae(rewards, values, gamma: float, lam: float):
    """Advantages and returns of one response (1-D tensors over its tokens; the value after the last token is 0)."""
    import torch

    advantages = torch.zeros_like(rewards)
    last = 0.0
    for t in reversed(range(len(rewards))):
        next_value = values[t + 1] if t + 1 < len(rewards) else 0.0
        delta = rewards[t] + gamma * next_value - values[t]
        last = delta + gamma * lam * last
        advantages[t] = last
    return advantages, advantages + values


def token_rewards(score: float, logp, ref_logp, kl_coef: float):
    rewards = -kl_coef * (logp - ref_logp)
    rewards[-1] += score
    return rewards


def policy_loss(new_logp, old_logp, advantages, clip_range: float):
    import torch

    ratio = torch.exp(new_logp - old_logp)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
    loss = torch.max(unclipped, clipped).mean()
    clipfrac = (clipped > unclipped).float().mean()
    return loss, clipfrac


def value_loss(new_values, old_values, returns, clip_range_value: float):
    import torch

    clipped = old_values + torch.clamp(new_values - old_values, -clip_range_value, clip_range_value)
    return 0.5 * torch.max((new_values - returns) ** 2, (clipped - returns) ** 2).mean()


@dataclass
class Rollout:
    query_ids: list[list[int]]
    response_ids: list[list[int]]
    scores: list[float]  # finite only: unscorable samples never enter a rollout


class PpoLearner:
    """Holds the value head, optimizer, KL controller and reward statistics; ``step(rollout)`` does one PPO update."""

    def __init__(self, model, reference, pad_id: int, settings: PpoSettings, learning_rate: float,
                 autocast=None):
        import contextlib

        import torch

        self.model, self.reference, self.pad_id, self.settings = model, reference, pad_id, settings
        self.autocast = autocast or contextlib.nullcontext
        hidden = model.config.get_text_config().hidden_size
        self.value_head = value_head(hidden).to(next(model.parameters()).device)
        params = [p for p in model.parameters() if p.requires_grad] + list(self.value_head.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=learning_rate)
        self.kl = KlController(settings)
        self.moments = RunningMoments()

    def state_dict(self) -> dict:
        return {"value_head": self.value_head.state_dict(), "optimizer": self.optimizer.state_dict(),
                "kl_coef": self.kl.value, "moments": self.moments.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.value_head.load_state_dict(state["value_head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.kl.value = state["kl_coef"]
        self.moments.load_state_dict(state["moments"])

    def _forward(self, query_ids, response_ids):
        from realm_cli.align.sampling import token_logprobs

        with self.autocast():
            logps, hidden = token_logprobs(self.model, query_ids, response_ids, self.pad_id, with_hidden=True,
                                           batch_size=len(response_ids))
        return logps, [self.value_head(h).squeeze(-1) for h in hidden]

    def step(self, rollout: Rollout) -> dict:
        import torch
        from torch import nn

        s = self.settings
        keep = [i for i, r in enumerate(rollout.response_ids) if r]  # an empty response has no token to credit
        queries = [rollout.query_ids[i] for i in keep]
        responses = [rollout.response_ids[i] for i in keep]
        raw = torch.tensor([rollout.scores[i] for i in keep], dtype=torch.float32)
        scores = raw
        if s.whiten_rewards:
            self.moments.update(raw)
            scores = (raw - self.moments.mean) / self.moments.std
        scores = scores.clamp(-s.reward_clip, s.reward_clip)

        from realm_cli.align.sampling import token_logprobs

        with torch.no_grad():
            old_logp, old_values = [], []
            for start in range(0, len(responses), s.minibatch_size):
                lp, v = self._forward(queries[start:start + s.minibatch_size],
                                      responses[start:start + s.minibatch_size])
                old_logp += [x.detach() for x in lp]
                old_values += [x.detach() for x in v]
            with self.reference.model() as ref_model, self.autocast():
                ref_logp = token_logprobs(ref_model, queries, responses, self.pad_id,
                                          batch_size=s.minibatch_size)
        kls = [(lp - rp).sum().item() for lp, rp in zip(old_logp, ref_logp)]
        advantages, returns = [], []
        for score, lp, rp, v in zip(scores.tolist(), old_logp, ref_logp, old_values):
            adv, ret = gae(token_rewards(score, lp, rp, self.kl.value), v, s.gamma, s.lam)
            advantages.append(adv)
            returns.append(ret)
        flat = whiten(torch.cat(advantages))
        advantages = list(torch.split(flat, [len(a) for a in advantages]))

        stats = {"pg_loss": [], "vf_loss": [], "clipfrac": []}
        order = list(range(len(responses)))
        for _ in range(s.ppo_epochs):
            order = [order[i] for i in torch.randperm(len(order)).tolist()]
            for start in range(0, len(order), s.minibatch_size):
                idx = order[start:start + s.minibatch_size]
                new_logp, new_values = self._forward([queries[i] for i in idx], [responses[i] for i in idx])
                cat = lambda xs: torch.cat([xs[i] for i in idx])  # noqa: E731
                pg, clipfrac = policy_loss(torch.cat(new_logp), cat(old_logp), cat(advantages), s.clip_range)
                vf = value_loss(torch.cat(new_values), cat(old_values), cat(returns), s.clip_range_value)
                loss = pg + s.vf_coef * vf
                self.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]],
                                         s.max_grad_norm)
                self.optimizer.step()
                stats["pg_loss"].append(pg.item())
                stats["vf_loss"].append(vf.item())
                stats["clipfrac"].append(clipfrac.item())
        kl = sum(kls) / len(kls)
        self.kl.update(kl, len(responses))
        mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
        return {"reward": raw.mean().item(), "kl": kl, "kl_coef": self.kl.value,
                "length": mean([len(r) for r in responses]), "pg_loss": mean(stats["pg_loss"]),
                "vf_loss": mean(stats["vf_loss"]), "clipfrac": mean(stats["clipfrac"])}


@dataclass
class PpoOptions(AlignOptions, PpoSettings):
    steps_per_round: int = 8
    prompts_per_step: int = 8

    def __post_init__(self):
        super().__post_init__()
        if self.steps_per_round < 1 or self.prompts_per_step < 1 or self.ppo_epochs < 1 or self.minibatch_size < 1:
            raise ValueError("steps_per_round, prompts_per_step, ppo_epochs and minibatch_size must be at least 1")


class PpoAligner(AlignJob):
    """``realm align --algo ppo``: each step samples ``k`` responses for ``prompts_per_step`` prompts, scores the
    decoded text with the reward (samples it cannot score are left out of the step and counted) and runs one
    ``PpoLearner`` update."""

    Config = PpoOptions
    multi_process = False  # realm's own PPO loop: nothing would share it out over processes

    def _learner(self):
        if getattr(self, "learner", None) is None:
            from dataclasses import fields

            settings = PpoSettings(**{f.name: getattr(self.config, f.name) for f in fields(PpoSettings)})
            self.learner = PpoLearner(self.model, self.reference, self.tokenizer.pad_token_id, settings,
                                      self.config.learning_rate, autocast=self.autocast)
        return self.learner

    def extra_state(self) -> dict:
        return {"ppo": self._learner().state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self._learner().load_state_dict(state["ppo"])

    def train_round(self, round_index, prompts):

        learner = self._learner()
        n = min(self.config.prompts_per_step, len(prompts))
        steps = []
        for step in range(self.config.steps_per_round):
            batch = [prompts[(step * n + i) % len(prompts)] for i in range(n)]
            samples, scores = self.sample_and_score(batch, self.config.k)
            keep = [i for i, v in enumerate(scores.values) if math.isfinite(v)]
            rollout = Rollout([samples.query_ids[i] for i in keep], [samples.response_ids[i] for i in keep],
                              [scores.values[i] for i in keep])
            stats = learner.step(rollout)
            steps.append(self.log(**stats, unscored=scores.failed))
        mean = lambda key: sum(s[key] for s in steps) / len(steps)  # noqa: E731
        return {"reward": mean("reward"), "kl": mean("kl"), "kl_coef": steps[-1]["kl_coef"],
                "length": mean("length"), "pg_loss": mean("pg_loss"), "vf_loss": mean("vf_loss"),
                "unscored": sum(s["unscored"] for s in steps)}
