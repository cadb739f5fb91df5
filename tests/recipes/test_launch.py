import sys

import pytest

from realm_cli.recipes import launch
from realm_cli.config import ConfigError
from realm_cli.errors import RealmError
from realm_cli.recipes.launch import LaunchConfig


def test_single_process_cpu_runs_in_process():
    assert not launch.needs_launcher(LaunchConfig())
    assert not launch.needs_gpu(LaunchConfig())


def test_multi_cpu_command_is_pure_and_complete():
    cfg = LaunchConfig(accelerate_config="multi_cpu", num_processes=2)
    argv = launch.build_command(["train-rm"], "my.yaml", ["trainer.max_steps=3"], cfg, python="/py")
    assert argv[:3] == ["/py", "-m", "accelerate.commands.launch"]
    assert argv[argv.index("--config_file") + 1].endswith("multi_cpu.yaml")
    assert argv[argv.index("--num_processes") + 1] == "2"
    assert argv[argv.index("--module") + 1:] == ["realm_cli.cli", "train-rm", "--recipe", "my.yaml",
                                                 "trainer.max_steps=3", "--launched"]
    assert launch.needs_launcher(cfg) and not launch.needs_gpu(cfg)
    assert argv == launch.build_command(["train-rm"], "my.yaml", ["trainer.max_steps=3"], cfg, python="/py")


def test_deepspeed_command_names_the_json():
    cfg = LaunchConfig(accelerate_config="deepspeed_zero3", deepspeed_config="zero3")
    argv = launch.build_command(["train-rm"], "gemma", [], cfg, python=sys.executable)
    assert "--use_deepspeed" in argv
    assert argv[argv.index("--deepspeed_config_file") + 1].endswith("zero3.json")
    assert launch.needs_gpu(cfg) and launch.process_count(cfg) == 4


def test_gpu_recipe_on_cpu_machine_fails_before_work(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(RealmError, match="needs CUDA GPUs and this machine has none"):
        launch.check_hardware(LaunchConfig(accelerate_config="deepspeed_zero3", deepspeed_config="zero3"))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(RealmError, match="wants 4 GPU processes; this machine has 1"):
        launch.check_hardware(LaunchConfig(accelerate_config="deepspeed_zero3", deepspeed_config="zero3"))


def test_unknown_configs_are_one_line_errors():
    with pytest.raises(ConfigError, match="launch.accelerate_config: no accelerate config 'tpu'.*available: cpu"):
        LaunchConfig(accelerate_config="tpu").check()
    with pytest.raises(ConfigError, match="launch.deepspeed_config: no deepspeed config 'zero9'"):
        LaunchConfig(deepspeed_config="zero9").check()


def test_shipped_configs_parse():
    import json

    import yaml

    for name in launch.available("accelerate_configs", ".yaml"):
        assert "distributed_type" in yaml.safe_load(launch.config_path("accelerate_configs", name, ".yaml").read_text())
    stages = {n: json.loads(launch.config_path("deepspeed_configs", n, ".json").read_text())["zero_optimization"]["stage"]
              for n in launch.available("deepspeed_configs", ".json")}
    assert stages == {"zero2": 2, "zero3": 3, "zero3_offload": 3}


def test_cpu_deepspeed_config_runs_without_gpus(monkeypatch):
    """deepspeed_cpu: DeepSpeed through accelerate's DeepSpeed launcher on CPU processes (its CPU accelerator)."""
    import torch
    import yaml

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    cfg = LaunchConfig(accelerate_config="deepspeed_cpu", deepspeed_config="zero3", num_processes=2)
    assert launch.runs_on_cpu(cfg) and not launch.needs_gpu(cfg) and launch.needs_launcher(cfg)
    launch.check_hardware(cfg)  # no GPU wanted: no error
    argv = launch.build_command(["train-rm"], "r.yaml", [], cfg, python="/py")
    assert argv[argv.index("--config_file") + 1].endswith("deepspeed_cpu.yaml")
    assert "--use_deepspeed" in argv and argv[argv.index("--deepspeed_config_file") + 1].endswith("zero3.json")
    settings = yaml.safe_load(launch.config_path("accelerate_configs", "deepspeed_cpu", ".yaml").read_text())
    # use_cpu: true would bypass accelerate's DeepSpeed launcher; mixed_precision beside a DeepSpeed JSON is refused.
    assert settings["distributed_type"] == "DEEPSPEED" and settings["use_cpu"] is False
    assert "mixed_precision" not in settings


def test_cpu_configs_are_told_apart_from_gpu_ones(tmp_path):
    assert launch.runs_on_cpu(LaunchConfig()) and launch.runs_on_cpu(LaunchConfig(accelerate_config="multi_cpu"))
    assert not launch.runs_on_cpu(LaunchConfig(accelerate_config="deepspeed_zero3", deepspeed_config="zero3"))
    assert not launch.runs_on_cpu(LaunchConfig(accelerate_config="fsdp"))
    mine = tmp_path / "my_fsdp_cpu.yaml"  # a user's file: the name says CPU
    mine.write_text("distributed_type: FSDP\nnum_processes: 2\n")
    assert launch.runs_on_cpu(LaunchConfig(accelerate_config=str(mine)))
    assert not launch.needs_gpu(LaunchConfig(accelerate_config=str(mine)))


def test_gpu_deepspeed_recipe_on_cpu_points_at_the_cpu_config(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(RealmError, match="launch.accelerate_config=deepspeed_cpu"):
        launch.check_hardware(LaunchConfig(accelerate_config="deepspeed_zero2", deepspeed_config="zero2"))


def test_trainer_kwargs_for_cpu_process_groups(monkeypatch):
    import deepspeed.ops

    from realm_cli import distributed

    for var in ("WORLD_SIZE", "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP"):
        monkeypatch.delenv(var, raising=False)
    assert distributed.trainer_kwargs("cpu") == {}  # one process: HF's defaults
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed.trainer_kwargs("cuda") == {}
    plain = {"ddp_backend": "gloo", "dataloader_pin_memory": False}
    assert distributed.trainer_kwargs("cpu") == plain
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert distributed.trainer_kwargs("cpu") == {**plain, "bf16": False}
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "false")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setitem(deepspeed.ops.__compatible_ops__, "deepspeed_shm_comm", True)
    assert distributed.trainer_kwargs("cpu") == {**plain, "bf16": False, "use_cpu": False}
    assert deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] is False  # no 3.5-minute JIT build


def test_a_sharding_request_that_did_not_shard_stops_the_run(monkeypatch):
    """accelerate silently runs FSDP on CPU processes as plain data parallel: realm stops instead."""
    from realm_cli import distributed

    for var in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP"):
        monkeypatch.delenv(var, raising=False)
    ddp = {"world_size": 2, "strategy": "ddp", "engine": "torch.nn.parallel.distributed.DistributedDataParallel"}
    distributed.check_layout(ddp)  # nothing asked for: fine
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(RealmError, match="asked for FSDP, but the model was wrapped as ddp.*only on GPUs"):
        distributed.check_layout(ddp)
    distributed.check_layout({**ddp, "strategy": "fsdp2", "engine": "FSDPLlama"})
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "false")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(RealmError, match="asked for DeepSpeed"):
        distributed.check_layout(ddp)
    distributed.check_layout({**ddp, "strategy": "zero2", "engine": "DeepSpeedEngine"})


def test_deepspeed_accelerate_configs_leave_precision_to_the_json():
    """accelerate refuses a DeepSpeed JSON beside accelerate-side DeepSpeed fields, mixed_precision included (even
    'no'): "When using `deepspeed_config_file`, the following accelerate config variables will be ignored"."""
    import yaml

    for name in launch.available("accelerate_configs", ".yaml"):
        settings = yaml.safe_load(launch.config_path("accelerate_configs", name, ".yaml").read_text())
        if settings["distributed_type"] == "DEEPSPEED":
            assert "mixed_precision" not in settings and not settings.get("deepspeed_config"), name
