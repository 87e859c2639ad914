"""Small Python-backend models that show how this Triton's Python backend behaves, and :func:`add`, which puts one
(or a bench's model) into a model repository (with ``_common``, as the renderer does for the platform's models)."""

from __future__ import annotations

import shutil
from pathlib import Path

PROBES = Path(__file__).resolve().parent
COMMON = PROBES.parents[2] / "model_repo" / "python_models" / "_common"


def add(
    repo: Path,
    name: str,
    source: str | Path,
    *,
    inputs: tuple[str, ...],
    outputs: dict[str, tuple[str, int]],
    decoupled: bool = False,
    **parameters: str,
) -> None:
    """Model ``name`` in ``repo``, running ``source`` (a probe's file name, or the path of a model file elsewhere):
    ``inputs`` each INT32 [1], ``outputs`` as name -> (Triton type, length), one CPU instance, string
    ``parameters``."""
    ins = ", ".join(f'{{ name: "{i}" data_type: TYPE_INT32 dims: [ 1 ] }}' for i in inputs)
    outs = ", ".join(f'{{ name: "{o}" data_type: {t} dims: [ {dims} ] }}' for o, (t, dims) in outputs.items())
    lines = [
        f'name: "{name}"',
        'backend: "python"',
        "max_batch_size: 0",
        "model_transaction_policy { decoupled: true }" if decoupled else "",
        f"input [ {ins} ]",
        f"output [ {outs} ]",
        "instance_group [ { kind: KIND_CPU count: 1 } ]",
        *(f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}' for k, v in parameters.items()),
    ]
    version = repo / name / "1"
    version.mkdir(parents=True)
    (repo / name / "config.pbtxt").write_text("\n".join(line for line in lines if line) + "\n")
    shutil.copyfile(PROBES / source, version / "model.py")  # an absolute source stays itself
    shutil.copytree(COMMON, version / "_common")
