"""Checks of a rendered Triton model repository: every config is parsed back with Triton's own protobuf
schema and held to the platform's rules (backends per target, tensors, no unresolved placeholder, every
required file written or listed). Rendering runs them before a repository is moved into place."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from model_repo.layout import (
    ALLOWED_BACKENDS,
    ALLOWED_PLATFORMS,
    MANIFEST,
    UNRESOLVED,
    VERSION,
    RenderError,
    required_files,
)


def _check_tensors(model: str, kind: str, tensors: Iterable[Any], problems: list[str]) -> None:
    names = []
    for t in tensors:
        names.append(t.name)
        if not t.name:
            problems.append(f"{model}: an {kind} has no name")
        if t.data_type == mc.TYPE_INVALID:
            problems.append(f"{model}: {kind} {t.name!r} has no valid data_type")
        if not t.dims or any(d == 0 or d < -1 for d in t.dims):
            problems.append(f"{model}: {kind} {t.name!r} dims {list(t.dims)} must be positive sizes or -1")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(f"{model}: {kind} names repeat: {dupes}")


def validate_configs(configs: Mapping[str, mc.ModelConfig], target: str) -> None:
    """Check a set of configs as one repository; raise RenderError listing every problem."""
    problems: list[str] = []
    for key, config in configs.items():
        name = config.name
        if name != key:
            problems.append(f"{key}: config name {name!r} differs from its directory {key!r}")
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name or ""):
            problems.append(f"{key}: model name {name!r} is not a valid directory/model name")
        if bool(config.backend) == bool(config.platform):
            problems.append(f"{name}: set exactly one of backend ({config.backend!r}) / platform ({config.platform!r})")
        if config.backend and config.backend not in ALLOWED_BACKENDS[target]:
            problems.append(f"{name}: backend {config.backend!r} not allowed on {target}")
        if config.platform and config.platform not in ALLOWED_PLATFORMS[target]:
            problems.append(f"{name}: platform {config.platform!r} not allowed on {target}")
        if config.max_batch_size < 0:
            problems.append(f"{name}: max_batch_size {config.max_batch_size} < 0")
        if config.HasField("dynamic_batching"):
            if config.max_batch_size == 0:
                problems.append(f"{name}: dynamic_batching needs max_batch_size > 0")
            bad = [p for p in config.dynamic_batching.preferred_batch_size if not 1 <= p <= config.max_batch_size]
            if bad:
                problems.append(f"{name}: preferred_batch_size {bad} outside 1..{config.max_batch_size}")
        if config.model_transaction_policy.decoupled and config.backend != "python":
            problems.append(f"{name}: decoupled needs the python backend here")
        if not config.input or not config.output:
            problems.append(f"{name}: needs at least one input and one output")
        _check_tensors(name, "input", config.input, problems)
        _check_tensors(name, "output", config.output, problems)
        if not config.instance_group:
            problems.append(f"{name}: no instance_group")
        for group in config.instance_group:
            if group.count < 1:
                problems.append(f"{name}: instance_group {group.name!r} count {group.count} < 1")
            if target == "cpu" and group.kind != mc.ModelInstanceGroup.KIND_CPU:
                problems.append(f"{name}: the cpu target runs KIND_CPU only")
            if group.gpus and group.kind != mc.ModelInstanceGroup.KIND_GPU:
                problems.append(f"{name}: instance_group {group.name!r} lists gpus but is not KIND_GPU")
            if config.platform == "tensorrt_plan" and group.kind != mc.ModelInstanceGroup.KIND_GPU:
                problems.append(f"{name}: a TensorRT plan runs on KIND_GPU")
        # Ensemble steps and BLS references (every `*_model` parameter) name models of this repository.
        for step in config.ensemble_scheduling.step:
            if step.model_name not in configs:
                problems.append(f"{name}: ensemble step calls {step.model_name!r}, which is not in the repository")
        for pkey, pvalue in config.parameters.items():
            if pkey.endswith("_model") and pvalue.string_value not in configs:
                problems.append(
                    f"{name}: parameter {pkey} = {pvalue.string_value!r} names no model in the repository "
                    f"({sorted(configs)})"
                )
        text = text_format.MessageToString(config)
        if UNRESOLVED.search(text):
            problems.append(f"{name}: unresolved placeholder in config: {UNRESOLVED.search(text).group(0)!r}")
    if problems:
        raise RenderError("invalid model repository:\n" + "\n".join(f"  - {p}" for p in problems))


def parse_config(path: Path) -> mc.ModelConfig:
    """Parse a config.pbtxt with Triton's schema (unknown fields are errors)."""
    try:
        return text_format.Parse(path.read_text(), mc.ModelConfig())
    except text_format.ParseError as exc:
        raise RenderError(f"{path}: not a valid Triton model config ({exc})") from None


def validate_repository(root: Path, target: str) -> dict[str, mc.ModelConfig]:
    """Parse every config.pbtxt under ``root`` back and validate the repository as Triton would load it."""
    root = Path(root)
    configs: dict[str, mc.ModelConfig] = {}
    problems: list[str] = []
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        cfg = model_dir / "config.pbtxt"
        if not cfg.is_file():
            problems.append(f"{model_dir.name}: no config.pbtxt")
            continue
        raw = cfg.read_text()
        if UNRESOLVED.search(raw):
            problems.append(f"{model_dir.name}: unresolved placeholder {UNRESOLVED.search(raw).group(0)!r}")
        config = parse_config(cfg)
        configs[model_dir.name] = config
        version = model_dir / VERSION
        if not version.is_dir():
            problems.append(f"{model_dir.name}: no version directory {VERSION}/")
        elif config.backend == "python" and not (version / "model.py").is_file():
            problems.append(f"{model_dir.name}: Python backend model without {VERSION}/model.py")
    manifest = root / MANIFEST
    if manifest.is_file() and UNRESOLVED.search(manifest.read_text()):
        problems.append(f"{MANIFEST}: unresolved placeholder")
    problems += _unplaced_required_files(root, configs)
    if problems:
        raise RenderError("invalid model repository:\n" + "\n".join(f"  - {p}" for p in problems))
    if not configs:
        raise RenderError(f"{root}: no models")
    validate_configs(configs, target)
    return configs


def _unplaced_required_files(root: Path, configs: Mapping[str, mc.ModelConfig]) -> list[str]:
    """Every file a Python model declares in REQUIRED_FILES must be in its version directory or listed in
    ``repository.json`` for the deployment to place; otherwise the model would fail to load in production."""
    listed: dict[str, set[str]] = {}
    manifest = root / MANIFEST
    if manifest.is_file():
        try:
            for entry in json.loads(manifest.read_text()).get("models", []):
                listed[entry["name"]] = {a["path"] for a in entry.get("artifacts", [])}
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            return [f"{MANIFEST}: not a repository manifest ({exc})"]
    problems = []
    for name, config in configs.items():
        model_py = root / name / VERSION / "model.py"
        if config.backend != "python" or not model_py.is_file():
            continue
        params = {k: v.string_value for k, v in config.parameters.items()}
        for parameter, rel in required_files(model_py, params).items():
            if not (model_py.parent / rel).exists() and f"{VERSION}/{rel}" not in listed.get(name, set()):
                problems.append(
                    f"{name}: model.py loads {VERSION}/{rel} (REQUIRED_FILES[{parameter!r}]), which is neither in "
                    f"the repository nor listed in {MANIFEST} for the deployment to place; give the catalog "
                    f"entry an artifact or a `files` entry for it"
                )
    return problems
