"""The stack-outputs contract (docs/outputs.contract.json) and the check of a program run against it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

CONTRACT_PATH = Path(__file__).resolve().parents[2] / "docs" / "outputs.contract.json"


@cache
def load_contract() -> dict[str, Any]:
    return json.loads(CONTRACT_PATH.read_text())


def contract_problems(
    outputs: Mapping[str, Any], secret_outputs: Iterable[str], contract: Mapping[str, Any] | None = None
) -> list[str]:
    """Everything about a stack's outputs that breaks the contract, one sentence each (empty: compliant)."""
    contract = contract or load_contract()
    declared: dict[str, dict[str, Any]] = contract["outputs"]
    secret = set(secret_outputs)
    problems = []
    for name, spec in declared.items():
        if name not in outputs:
            if name == "outputsVersion":
                problems.append(
                    "output 'outputsVersion' is missing; export it beside the others: "
                    f'"outputsVersion": "{contract["outputsVersion"]}" '
                    "(docs/outputs.contract.json holds the version)"
                )
            elif spec["status"] == "stable":
                problems.append(
                    f"output {name!r} is missing (renamed or removed?): stable outputs are a contract; keep the name "
                    "(add the new one beside it and bump outputsVersion's major for a breaking change)"
                )
            continue
        if spec["secret"] and name not in secret:
            problems.append(f"output {name!r} lost its secret flag; export it with pulumi.Output.secret(...)")
        if not spec["secret"] and name in secret:
            problems.append(
                f"output {name!r} became secret; consumers read it in plain text: keep it plain or version the change"
            )
        errors = sorted(jsonschema.Draft202012Validator(spec["schema"]).iter_errors(outputs[name]), key=str)
        for error in errors:
            where = "/".join(str(p) for p in error.absolute_path) or "(value)"
            problems.append(f"output {name!r} at {where}: {error.message} (contract type in docs/outputs.md)")
    for name in sorted(set(outputs) - set(declared)):
        problems.append(
            f"output {name!r} is not in the contract; document it in docs/outputs.md and docs/outputs.contract.json"
        )
    version = outputs.get("outputsVersion")
    if version is not None and version != contract["outputsVersion"]:
        expected = contract["outputsVersion"]
        problems.append(f"outputsVersion is {version!r}, the contract is {expected!r}; keep them equal")
    return problems


def drain_event_loop() -> None:
    """Cancel what a failed mocked program run left pending on the event loop.

    A run that fails mid-registration returns while other registrations of that run are still queued;
    left alone they would run (and fail) inside the next program run and report their error there.
    """
    import asyncio

    loop = asyncio.get_event_loop()
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
