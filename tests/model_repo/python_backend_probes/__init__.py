"""Small Python-backend models that show how this Triton's Python backend behaves, and :func:`add`, which puts one
into a model repository (with ``_common``, as the renderer does for the platform's models)."""

from __future__ import annotations

import shutil
from pathlib import Path

PROBES = Path(__file__).resolve().parent
COMMON = PROBES.parents[2] / "model_repo" / "python_models" / "_common"


def add(
    repo: Path,
    name: str,
    source: str,
    *,
    input: str,
    outputs: dict[str, tuple[str, int]],
    decoupled: bool = False,
    **parameters: str,
) -> None:
    """Model ``name`` in ``repo``, running probe ``source``: one INT32 [1] ``input``, ``outputs`` as name -> (Triton
    type, length), one CPU instance, string ``parameters``."""
    tensors = ", ".join(f'{{ name: "{o}" data_type: {t} dims: [ {dims} ] }}' for o, (t, dims) in outputs.items())
    lines = [
        f'name: "{name}"',
        'backend: "python"',
        "max_batch_size: 0",
        "model_transaction_policy { decoupled: true }" if decoupled else "",
        f'input [ {{ name: "{input}" data_type: TYPE_INT32 dims: [ 1 ] }} ]',
        f"output [ {tensors} ]",
        "instance_group [ { kind: KIND_CPU count: 1 } ]",
        *(f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}' for k, v in parameters.items()),
    ]
    version = repo / name / "1"
    version.mkdir(parents=True)
    (repo / name / "config.pbtxt").write_text("\n".join(line for line in lines if line) + "\n")
    shutil.copyfile(PROBES / source, version / "model.py")
    shutil.copytree(COMMON, version / "_common")
