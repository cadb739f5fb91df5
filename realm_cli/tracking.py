"""Experiment tracking for train-rm and align: Hugging Face's own reporting integrations (TensorBoard, W&B, trackio,
MLflow, …), chosen in the recipe's trainer block, and realm's end-of-run metrics (held-out accuracy, win-rate,
reward, KL) logged through the same callbacks so they sit beside the training curves in the same run."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from realm_cli.errors import RealmError

# the pip package that makes each integration available (the names are transformers' report_to names)
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio", "mlflow": "mlflow",
            "comet_ml": "comet_ml", "clearml": "clearml", "neptune": "neptune", "dvclive": "dvclive",
            "swanlab": "swanlab", "azure_ml": "azureml-core", "codecarbon": "codecarbon", "dagshub": "dagshub",
            "flyte": "flytekit", "kubeflow": "kubeflow"}


@dataclass
class TrackingOptions:
    """Mixed into a trainer's ``Config``: ``trainer.report_to: [tensorboard]``, ``trainer.run_name``,
    ``trainer.project`` (the W&B / trackio project)."""

    report_to: list[str] = field(default_factory=list)
    run_name: str | None = None
    project: str = "realm"

    def __post_init__(self):
        known = known_integrations() if self.report_to else set()
        for name in self.report_to:
            if name not in known:
                raise ValueError(f"report_to: unknown integration {name!r} (known: {', '.join(sorted(known))})")


def known_integrations() -> set[str]:
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    return set(INTEGRATION_TO_CALLBACK)


def training_kwargs(options: TrackingOptions, run_dir: Path, default_name: str) -> dict:
    """TrainingArguments keywords for the chosen integrations. Fails before any work when one is not installed
    (transformers would raise deep inside the trainer's constructor). TensorBoard writes to RUN_DIR/tensorboard
    unless the user set TENSORBOARD_LOGGING_DIR (HF's own default is inside the checkpoint folder)."""
    if not options.report_to:
        return {"report_to": "none"}
    from transformers.integrations import get_available_reporting_integrations

    available = set(get_available_reporting_integrations())
    missing = [name for name in options.report_to if name not in available]
    if missing:
        raise RealmError(f"trainer.report_to: {', '.join(missing)} not installed in this environment "
                         f"(pip install {' '.join(PACKAGES.get(m, m) for m in missing)})")
    if "tensorboard" in options.report_to:
        # HF's TensorBoardCallback reads the log directory from this variable only (TrainingArguments has no field).
        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(Path(run_dir) / "tensorboard"))
    return {"report_to": list(options.report_to), "run_name": options.run_name or default_name,
            "project": options.project}


def log_metrics(trainer, metrics: dict, prefix: str) -> None:
    """realm's own numbers into every configured integration, at the trainer's last step. Nested dicts flatten to
    ``eval_PREFIX/outer/inner``: HF's integrations file ``eval_*`` keys under ``eval/`` (anything else under
    ``train/``), so held-out numbers land beside HF's own evaluation curves. Only numbers are sent."""
    if trainer.args.report_to in ("none", [], None):
        return
    flat: dict[str, float] = {}

    def walk(key: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{key}/{k}", v)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[key] = float(value)

    walk(f"eval_{prefix}", metrics)
    if flat:
        trainer.log(flat)
