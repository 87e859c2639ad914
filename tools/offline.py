"""Run the Pulumi program offline, under Pulumi's own mocks, and record everything it declares.

No CLI, no cloud: the real program (``__main__.py``) runs in the Pulumi Python SDK against a mock
resource monitor (``pulumi.runtime.set_mocks`` with ``preview=False``, so every ``apply`` runs with
known values instead of being skipped), and the mocks answer the way AWS would: ids in AWS's
formats, ARNs, an API endpoint, a CA certificate, an OIDC issuer, availability zones. Every
registration is recorded with its inputs and options (``protect``, provider, dependencies,
``ignoreChanges``) because the mock ``new_resource`` hook alone never sees options.

Used by the plan command (``python -m tools.plan``) and by the tests (``tests/pulumi_harness.py``).
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import runpy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from platform_spec.settings import PROJECT, REPO_ROOT
from tools.aws_mocks import (  # noqa: F401 (re-exported: tools.offline is where tests and the plan find them)
    ACCOUNT_ID,
    DEPLOYER_ROLE_ARN,
    REGION_ZONE_LETTERS,
    CallHandler,
    PlatformMocks,
    ResourceHandler,
    UnmockedInvokeError,
    autoname,
    render_policy_document,
)

MAIN_PROGRAM = REPO_ROOT / "__main__.py"
# What only a team can set before a real preview (Settings.deploy_blockers), as stand-ins consistent with
# the mocks: their deploy role as the cluster admin, a private range as the deployer's network, the name of
# the Secret holding Alertmanager's receivers.
STAND_IN_ACCESS = {
    f"{PROJECT}:cluster.adminPrincipalArns": [DEPLOYER_ROLE_ARN],
    f"{PROJECT}:cluster.deployerCidrs": ["10.250.0.0/16"],
    f"{PROJECT}:monitoring.alertmanagerConfigSecret": "alertmanager-receivers",
}



# --- what gets recorded -----------------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    """One resource the program declared, as the engine would have received it."""

    type: str  # e.g. "aws:eks/nodeGroup:NodeGroup", "platform:nodes:NodeGroups"
    name: str  # logical name
    urn: str
    id: str  # the physical id the mocks assigned ("" for components)
    parent: str  # parent URN, "" for top-level resources
    custom: bool  # False for ComponentResources
    inputs: dict[str, Any]  # wire names (camelCase), secrets unwrapped
    outputs: dict[str, Any]  # the state the mocks answered with
    protect: bool
    provider: str  # provider reference "<urn>::<id>", "" for the default provider
    dependencies: tuple[str, ...]
    ignore_changes: tuple[str, ...]
    import_id: str = ""  # the import resource option: the existing cloud resource this adopts
    secret_inputs: frozenset[str] = frozenset()  # top-level input keys sent as secrets

    @property
    def provider_urn(self) -> str:
        return self.provider.rsplit("::", 1)[0] if self.provider else ""


@dataclass
class ProgramRun:
    stack: str
    config: dict[str, str]
    registrations: list[Registration]
    outputs: dict[str, Any] = field(default_factory=dict)  # resolved stack outputs
    secret_outputs: set[str] = field(default_factory=set)
    error: BaseException | None = None

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> Registration:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.of_type(type_)]
            raise LookupError(f"expected one {type_} named {name!r}, found {len(found)} among {names}")
        return found[0]

    def by_urn(self, urn: str) -> Registration:
        return next(r for r in self.registrations if r.urn == urn)

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """MockMonitor that also keeps every RegisterResource request (options included)."""

    def __init__(self, mocks: pulumi_mocks.Mocks):
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            raw_inputs = rpc.deserialize_properties(request.object)
            self.registrations.append(
                Registration(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    id=self.resources[response.urn].id or "",
                    parent=request.parent,
                    custom=bool(request.custom),
                    inputs=_plain(raw_inputs),
                    outputs=_plain(self.resources[response.urn].state),
                    protect=bool(request.protect),
                    provider=request.provider,
                    dependencies=tuple(request.dependencies),
                    ignore_changes=tuple(request.ignoreChanges),
                    import_id=request.importId,
                    secret_inputs=frozenset(k for k, v in raw_inputs.items() if rpc.is_rpc_secret(v)),
                )
            )
        return response


def _plain(value: Any) -> Any:
    """Unwrap the SDK's secret envelopes so assertions see plain values."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:  # noqa: SLF001
            return _plain(value.get("value"))
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# --- config overrides ------------------------------------------------------------------------------

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _split_path(path: str) -> tuple[str, list[str | int]]:
    """'triton-platform:gpuPools[0].minSize' -> ('triton-platform:gpuPools', [0, 'minSize'])."""
    match = re.match(r"[^.\[]+", path)
    if match is None:
        raise ValueError(f"bad config path {path!r}")
    key, rest = match.group(0), path[match.end() :]
    parts: list[str | int] = [name if name else int(index) for name, index in _PATH_PART.findall(rest)]
    return key, parts


def apply_overrides(
    config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, remove: Iterable[str] = ()
) -> dict[str, Any]:
    """A deep copy of ``config`` with dotted-path ``overrides`` set and ``remove`` paths deleted."""
    result = copy.deepcopy(dict(config))
    for path, value in (overrides or {}).items():
        key, parts = _split_path(path)
        if not parts:
            result[key] = copy.deepcopy(value)
            continue
        node = result.setdefault(key, {})
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = copy.deepcopy(value)
    for path in remove:
        key, parts = _split_path(path)
        if not parts:
            del result[key]
            continue
        node = result[key]
        for part in parts[:-1]:
            node = node[part]
        del node[parts[-1]]
    return result



# --- running the program -------------------------------------------------------------------------


def engine_encoded_config(config: Mapping[str, Any]) -> dict[str, str]:
    """Config values as the Pulumi engine hands them to a program: strings, with structured
    values (objects, lists) JSON-encoded and booleans as "true"/"false"."""
    encoded = {}
    for key, value in config.items():
        if isinstance(value, (dict, list)):
            encoded[key] = json.dumps(value)
        elif isinstance(value, bool):
            encoded[key] = "true" if value else "false"
        else:
            encoded[key] = str(value)
    return encoded


def _run_main_program() -> dict[str, Any]:
    """Execute ``__main__.py`` exactly as the Pulumi language host would, return its exports."""
    runpy.run_path(str(MAIN_PROGRAM), run_name="__main__")
    root = runtime_settings.get_root_resource()
    return dict(getattr(root, "outputs", {}) or {})


def run_program(
    config: Mapping[str, Any],
    *,
    stack: str,
    project: str = PROJECT,
    program: Callable[[], Mapping[str, Any] | None] = _run_main_program,
    mocks: PlatformMocks | None = None,
) -> ProgramRun:
    """Run ``program`` (by default the real ``__main__.py``) with ``config`` (a ``Pulumi.<stack>.yaml``
    ``config:`` map, plain YAML values) and return every registration and the resolved outputs.

    A program error (e.g. invalid settings) is returned in ``ProgramRun.error``, not raised, so a
    caller can assert on it and on how many resources were declared before it.
    """
    encoded = engine_encoded_config(config)
    _ensure_event_loop()
    _drop_leftover_outputs()
    mocks = mocks or PlatformMocks(region=str(config.get("aws:region", "us-west-2")))
    monitor = RecordingMonitor(mocks)
    runtime_settings.ROOT.set(None)  # a fresh root Stack per run, named after this stack
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(encoded, [])
    run = ProgramRun(stack=stack, config=encoded, registrations=monitor.registrations)

    async def body() -> None:
        declared = program() or {}
        for key, value in declared.items():
            output = pulumi.Output.from_input(value)
            run.outputs[key] = await output.future()
            if await output.is_secret():
                run.secret_outputs.add(key)

    try:
        _sync_await(run_pulumi_func(body))
    except Exception as exc:  # noqa: BLE001 - handed to the caller in run.error
        run.error = exc
    finally:
        pulumi.runtime.set_all_config({}, [])
        _drop_leftover_outputs()
    return run


def _ensure_event_loop() -> None:
    """Give the thread an open event loop if it has none.

    The SDK creates each resource's futures on the thread's current loop as soon as the resource is
    constructed; an earlier ``asyncio.run`` in the same process (a test, a tool) closes its loop and
    leaves the thread without one, and every later run would then fail before declaring anything."""
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        asyncio.set_event_loop(asyncio.new_event_loop())


def _drop_leftover_outputs() -> None:
    """Cancel output tasks a failed run left behind. The SDK keeps them in process-wide settings;
    otherwise the next run in the same process would await them and report the old run's error."""
    settings = runtime_settings.SETTINGS
    with settings.lock:
        for task in list(settings.outputs):
            task.cancel()
        settings.outputs.clear()
