"""Shared by the train-rm tests: a learnable synthetic preference file and a recipe writer."""

from __future__ import annotations

import json
import random
from pathlib import Path

TOPICS = ["cats", "rust", "tea", "maps", "jazz", "bread", "rivers", "chess"]


def write_pairs(path: Path, n: int = 48, seed: int = 0, margin: bool = False, long_every: int = 0) -> Path:
    """Pairs where the chosen answer is on topic and polite, the rejected one curt: a tiny model learns it."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            topic = rng.choice(TOPICS)
            prompt = f"Tell me something about {topic}, please."
            if long_every and i % long_every == 0:
                prompt = " ".join(["Some earlier context about many things."] * 40) + " " + prompt
            row = {"prompt": prompt,
                   "chosen": f"Happy to help: {topic} are interesting, here is a clear answer about {topic}.",
                   "rejected": rng.choice(["No.", "Figure it out yourself.", "Whatever."])}
            if margin:
                row["margin"] = float(i % 3)
            f.write(json.dumps(row) + "\n")
    return path


# One thread: the suite runs two pytest workers on two cores, and oversubscribed threads spin-wait.
TRAINER = {"per_device_batch_size": 4, "learning_rate": 1.0e-3, "epochs": 1, "save_steps": 1000,
           "logging_steps": 2, "num_threads": 1}


def write_recipe(path: Path, model: str, data_file: Path, out: Path, *, trainer: dict | None = None, lora: str = "",
                 launch: str = "", max_length: int = 64, validation_split: float = 0.25) -> Path:
    options = "\n".join(f"  {k}: {json.dumps(v)}" for k, v in {**TRAINER, **(trainer or {})}.items())
    path.write_text(f"""# realm train-rm --recipe {path}
command: train-rm
output_dir: {out}
model:
  name: {model}
{lora}
data:
  train:
    - name: preference
      path: {data_file}
  validation_split: {validation_split}
  max_length: {max_length}
trainer:
  name: bt
{options}
{launch}
""")
    return path
