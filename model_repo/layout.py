"""The on-disk shape of a rendered Triton model repository: names, what each target may run, and the
files a Python model declares it loads (``REQUIRED_FILES``). Shared by rendering and its checks."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from pathlib import Path

PYTHON_MODELS_DIR = Path(__file__).resolve().parent / "python_models"
# Files under python_models/_common/ are copied into every Python model's version directory as the
# package `_common` (the Python backend puts the version directory on sys.path).
COMMON_DIR = "_common"
MANIFEST = "repository.json"
VERSION = "1"
PLAN_FILENAME = "model.plan"
LLM_VARIANT_MODES = ("separate", "lora")
# Suffix of the parameters naming the GPU pool whose server serves a called model (python_models/
# _common/remote.py reads the same name).
ENDPOINT_POOL_SUFFIX = "_endpoint_pool"

# What each target may run. cpu: the Python backend only (no TensorRT, one image-free runtime).
ALLOWED_BACKENDS = {"gpu": {"python"}, "cpu": {"python"}}
ALLOWED_PLATFORMS = {"gpu": {"tensorrt_plan"}, "cpu": set()}
UNRESOLVED = re.compile(r"\$\{|\{\{|\}\}|<no value>")


class RenderError(ValueError):
    """The repository cannot be rendered or failed validation; nothing was written."""


def required_files(model_py: Path, parameters: Mapping[str, str]) -> dict[str, str]:
    """What a Python model loads from its version directory: ``REQUIRED_FILES`` of its ``model.py`` (config
    parameter -> default path), each resolved against the config's ``parameters``. Read with ``ast``, not
    imported: the model imports Triton's Python-backend module, which exists only inside the server."""
    tree = ast.parse(Path(model_py).read_text(), filename=str(model_py))
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if any(isinstance(t, ast.Name) and t.id == "REQUIRED_FILES" for t in targets) and node.value is not None:
            try:
                declared = ast.literal_eval(node.value)
            except ValueError:
                raise RenderError(f"{model_py}: REQUIRED_FILES must be a literal dict of parameter -> path") from None
            if not isinstance(declared, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in declared.items()
            ):
                raise RenderError(f"{model_py}: REQUIRED_FILES must map config parameter names to paths")
            return {key: parameters.get(key, default) for key, default in declared.items()}
    return {}
