"""The learned reward combiner: an MLP over [reward, similarity] features trained with the Bradley-Terry loss.

Hand-written in plain torch because the libraries' reward trainers (TRL RewardTrainer) train transformers over
tokens; this is a 2-feature, ~2.2k-parameter MLP. Features of a training set are cached on disk, keyed by sha256
of the member rewards' settings and the records, so retraining (other epochs, learning rate) calls no reward.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from realm_cli.config import PluginSpec, to_dict
from realm_cli.contracts import Message, PreferenceRecord

FEATURES = ("reward", "similarity")
WEIGHTS_FILE = "combiner.safetensors"
META_FILE = "combiner.json"


def build_mlp(dropout: float = 0.1):
    """2 -> 64 -> 32 -> 1 with ReLU and dropout, the REALM combined model's shape."""
    from torch import nn

    return nn.Sequential(nn.Linear(len(FEATURES), 64), nn.ReLU(), nn.Dropout(dropout), nn.Linear(64, 32), nn.ReLU(),
                         nn.Dropout(dropout), nn.Linear(32, 1))


def feature_cache_dir() -> Path:
    from realm_cli.models import cache_root

    return cache_root() / "features"


def features_key(reward: PluginSpec, similarity: PluginSpec, records: Sequence[PreferenceRecord]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"reward": to_dict(reward), "similarity": to_dict(similarity)}, sort_keys=True).encode())
    for r in records:
        h.update(json.dumps([r.prompt, r.chosen, r.rejected], ensure_ascii=False).encode())
    return h.hexdigest()


def member_features(members: Sequence, prompts: Sequence[list[Message]], responses: Sequence[str],
                    chunk: int = 256, on_chunk: Callable[[int], None] | None = None) -> list[list[float]]:
    """[[reward, similarity], ...] per (prompt, response), members called in chunks."""
    columns: list[list[float]] = [[] for _ in members]
    for start in range(0, len(responses), chunk):
        p, r = prompts[start:start + chunk], responses[start:start + chunk]
        for column, member in zip(columns, members):
            column.extend(member.score(p, r))
        if on_chunk:
            on_chunk(len(r))
    return [list(row) for row in zip(*columns)]


@dataclass
class PairFeatures:
    chosen: list[list[float]]
    rejected: list[list[float]]

    def finite(self) -> tuple[PairFeatures, int]:
        """Pairs where every feature is a number; how many were dropped (a member could not score them)."""
        keep = [i for i, (c, r) in enumerate(zip(self.chosen, self.rejected)) if all(map(math.isfinite, c + r))]
        return PairFeatures([self.chosen[i] for i in keep], [self.rejected[i] for i in keep]), len(self.chosen) - len(keep)


def load_cached(key: str, directory: Path) -> PairFeatures | None:
    path = directory / f"{key}.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    nan = lambda rows: [[math.nan if v is None else v for v in row] for row in rows]  # noqa: E731
    return PairFeatures(nan(data["chosen"]), nan(data["rejected"]))


def save_cached(key: str, directory: Path, features: PairFeatures) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"{key}.json.tmp{os.getpid()}"
    # NaN (a member could not score) is written as null so the file stays valid JSON
    tmp.write_text(json.dumps({"chosen": _nulls(features.chosen), "rejected": _nulls(features.rejected)}))
    tmp.replace(directory / f"{key}.json")


def _nulls(rows: list[list[float]]) -> list[list[float | None]]:
    return [[None if math.isnan(v) else v for v in row] for row in rows]


@dataclass
class Combiner:
    """A trained MLP plus the feature normalisation it was trained with."""

    model: object
    mean: list[float]
    std: list[float]

    def __call__(self, rows: list[list[float]]) -> list[float]:
        import torch

        x = (torch.tensor(rows, dtype=torch.float32) - torch.tensor(self.mean)) / torch.tensor(self.std)
        self.model.eval()
        with torch.no_grad():
            return self.model(x).squeeze(-1).tolist()


def save(directory: Path, combiner: Combiner, reward: PluginSpec, similarity: PluginSpec, dropout: float) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in combiner.model.state_dict().items()}, str(directory / WEIGHTS_FILE))
    meta = {"features": list(FEATURES), "mean": combiner.mean, "std": combiner.std, "dropout": dropout,
            "reward": to_dict(reward), "similarity": to_dict(similarity)}
    (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def load(directory: Path) -> tuple[Combiner, dict]:
    from safetensors.torch import load_file

    from realm_cli.errors import RealmError

    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise RealmError(f"{directory}: not a trained combiner (no {META_FILE}); train one with "
                         f"`realm train-rm --recipe linear-combiner-shp`")
    meta = json.loads(meta_path.read_text())
    model = build_mlp(meta.get("dropout", 0.1))
    model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    return Combiner(model, meta["mean"], meta["std"]), meta
