"""Run a piece of Pulumi program under Pulumi's own mocks and record every registration.

``preview=False``, so every Output resolves and assertions inside ``apply`` really run.
Each registration keeps its type, name, inputs, provider reference and parent URN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor

GENERATED_PASSWORD = "generated-by-the-mock-random-provider"
# How the engine protocol marks a secret value (pulumi.runtime.rpc's _special_secret_sig).
_SECRET_SIG = rpc._special_secret_sig  # noqa: SLF001 -- the documented wire marker
_SIG_KEY = rpc._special_sig_key  # noqa: SLF001


def plain(value: Any) -> Any:
    """``value`` with every secret marker removed (the object as the cluster would get it)."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return plain(value["value"])
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def secret_value(value: Any) -> Any:
    """The plain value inside a secret-marked input; fails if the input is not secret."""
    assert isinstance(value, dict) and value.get(_SIG_KEY) == _SECRET_SIG, f"not a secret: {value!r}"
    return value["value"]


@dataclass
class Registration:
    type: str
    name: str
    inputs: dict[str, Any]
    provider: str
    parent: str
    urn: str
    read: bool  # declared with .get() (read from the cluster), not created
    dependencies: list[str]  # URNs from depends_on and from the Outputs the inputs came from


@dataclass
class Recorded:
    registrations: list[Registration] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> Registration:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {type_} {name or ''}, found {[r.name for r in found]}"
        return found[0]

    def custom_resources(self, kind: str) -> list[Registration]:
        """Custom resources register as ``kubernetes:<group>/<version>:<Kind>``."""
        return [
            r
            for r in self.registrations
            if r.type.startswith("kubernetes:")
            and r.inputs.get("kind") == kind
            and r.type.endswith(f":{kind}")
            and "." in r.type.split(":")[1]
        ]


class _Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        if args.typ == "random:index/randomPassword:RandomPassword":
            state["result"] = GENERATED_PASSWORD
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}


class _RecordingMonitor(MockMonitor):
    def __init__(self, mocks: pulumi.runtime.Mocks, recorded: Recorded) -> None:
        super().__init__(mocks)
        self._recorded = recorded

    def _record(self, request: Any, read: bool) -> None:
        inputs = rpc.deserialize_properties(request.properties if read else request.object)
        self._recorded.registrations.append(
            Registration(
                type=request.type,
                name=request.name,
                inputs=inputs,
                provider=request.provider,
                parent=request.parent,
                urn=self.make_urn(request.parent, request.type, request.name),
                read=read,
                dependencies=list(getattr(request, "dependencies", [])),
            )
        )

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 -- the gRPC method name
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self._record(request, read=False)
        return response

    def ReadResource(self, request: Any) -> Any:  # noqa: N802
        response = super().ReadResource(request)
        self._record(request, read=True)
        return response


def run_program(program: Callable[[], dict[str, pulumi.Output[Any]]], recorded: Recorded | None = None) -> Recorded:
    """Run ``program`` (which declares resources and returns named Outputs) under mocks.

    Pass ``recorded`` to keep what was registered even when the program raises.
    """
    recorded = Recorded() if recorded is None else recorded
    mocks = _Mocks()
    pulumi.runtime.set_mocks(mocks, preview=False, monitor=_RecordingMonitor(mocks, recorded))

    @pulumi.runtime.test
    def run() -> pulumi.Output[Any]:
        outputs = program()
        return pulumi.Output.all(**outputs).apply(recorded.outputs.update)

    run()
    return recorded
