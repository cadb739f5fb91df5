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
