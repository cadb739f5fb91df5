"""Training the learned combiner (the `linear-combiner` trainer's work): features, normalisation, BT loss."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from realm_cli.tables import metrics_table

from realm_cli.rewards import combiner as cb
from realm_cli.errors import RealmError

console = Console(stderr=True)


class _Members:
    """Member rewards built on first use only: a full feature-cache hit never loads a model or calls an API."""

    def __init__(self, config):
        self.config = config
        self.rewards = None

    def get(self):
        if self.rewards is None:
            from realm_cli.rewards.build import build_reward

            self.rewards = [build_reward(self.config.reward)]
            self.rewards.append(build_reward(self.config.similarity))
        return self.rewards

    def close(self):
        for r in self.rewards or []:
            r.close()


def _features(name: str, records, config, members: _Members, cache_dir: Path) -> tuple[cb.PairFeatures, bool]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    key = cb.features_key(config.reward, config.similarity, records)
    cached = cb.load_cached(key, cache_dir)
    if cached is not None:
        return cached, True
    prompts = [r.prompt for r in records] * 2
    responses = [r.chosen for r in records] + [r.rejected for r in records]
    with Progress(TextColumn(f"features {name}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task(name, total=len(responses))
        rows = cb.member_features(members.get(), prompts, responses, config.score_batch_size,
                                  lambda n: progress.advance(task, n))
    features = cb.PairFeatures(rows[: len(records)], rows[len(records):])
    cb.save_cached(key, cache_dir, features)
    return features, False


def _accuracy(model, chosen, rejected) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        return float((model(chosen) > model(rejected)).float().mean())


def train(recipe, config, output_dir: Path) -> dict:
    import torch
    import torch.nn.functional as F

    from realm_cli.data.load import load

    if recipe.data is None:
        raise RealmError(f"recipe {recipe.name!r}: data: required (preference pairs, e.g. the shp dataset)")
    splits = load(recipe.data)
    if not splits.train:
        raise RealmError(f"recipe {recipe.name!r}: the train data is empty")
    cache_dir = Path(config.feature_cache).expanduser() if config.feature_cache else cb.feature_cache_dir()
    members = _Members(config)
    try:
        train_raw, hit = _features("train", splits.train, config, members, cache_dir)
        valid_raw = {name: _features(name, records, config, members, cache_dir)[0]
                     for name, records in splits.validation.items() if records}
    finally:
        members.close()
    train_f, unscored = train_raw.finite()
    if not train_f.chosen:
        raise RealmError("linear-combiner: no train pair has both features (every pair had an unscored response)")

    torch.manual_seed(recipe.seed)
    chosen, rejected = torch.tensor(train_f.chosen), torch.tensor(train_f.rejected)
    both = torch.cat([chosen, rejected])
    mean, std = both.mean(0), both.std(0).clamp_min(1e-8)
    norm = lambda x: (x - mean) / std  # noqa: E731
    model = cb.build_mlp(config.dropout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    n = len(chosen)
    losses = []
    for _ in range(config.epochs):
        model.train()
        order = torch.randperm(n)
        epoch_loss = 0.0
        for start in range(0, n, config.batch_size):
            idx = order[start:start + config.batch_size]
            loss = -F.logsigmoid(model(norm(chosen[idx])) - model(norm(rejected[idx]))).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            epoch_loss += loss.item() * len(idx)
        losses.append(epoch_loss / n)

    combiner = cb.Combiner(model, mean.tolist(), std.tolist())
    cb.save(output_dir, combiner, config.reward, config.similarity, config.dropout)
    metrics = {"train_pairs": n, "unscored_pairs": unscored, "feature_cache": "hit" if hit else "miss",
               "first_epoch_loss": losses[0], "final_loss": losses[-1],
               "train_accuracy": _accuracy(model, norm(chosen), norm(rejected))}
    for name, raw in valid_raw.items():
        f, dropped = raw.finite()
        if f.chosen:
            metrics[f"{name}_accuracy"] = _accuracy(model, norm(torch.tensor(f.chosen)), norm(torch.tensor(f.rejected)))
        metrics[f"{name}_pairs"] = len(f.chosen)
        metrics[f"{name}_unscored_pairs"] = dropped
    console.print(metrics_table(f"linear combiner -> {output_dir}", metrics))
    return metrics
