"""The `linear-combiner` trainer: fits realm's learned reward combiner (the `linear` reward) on preference pairs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from realm_cli.config import PluginSpec, plugin_field
from realm_cli.hookspecs import hookimpl
from realm_cli.contracts import Trainer


@dataclass
class LinearCombinerConfig:
    reward: PluginSpec = plugin_field("reward", default_factory=lambda: PluginSpec("nim"))
    similarity: PluginSpec = plugin_field("reward", default_factory=lambda: PluginSpec("embedding"))
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 1.0e-3
    weight_decay: float = 0.0
    dropout: float = 0.1
    score_batch_size: int = 256  # responses per member-reward call while extracting features
    feature_cache: str | None = None  # directory; default ~/.cache/realm/features (or $REALM_CACHE/features)

    def __post_init__(self):
        if min(self.epochs, self.batch_size, self.score_batch_size) < 1:
            raise ValueError("epochs, batch_size and score_batch_size must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class LinearCombinerTrainer(Trainer):
    """MLP 2->64->32->1 over [reward, similarity] features, Bradley-Terry loss; writes the `linear` reward's files."""

    Config = LinearCombinerConfig

    def run(self, output_dir: Path, *, resume: bool = False) -> dict:
        from realm_cli.train.combiner import train

        return train(self.recipe, self.config, Path(output_dir))


@hookimpl
def register_trainers(register):
    register("linear-combiner", LinearCombinerTrainer, description=LinearCombinerTrainer.__doc__)
