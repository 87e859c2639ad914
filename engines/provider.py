"""The ``Engine`` resource: a content-addressed engine artifact managed by a Pulumi dynamic provider.

One ``Engine`` provisions one artifact (TensorRT plan, optimized ONNX, LLM checkpoint, LoRA adapter)
under ``<store>/engines/<key>/``. Its inputs are the flat spec (``EngineSpec.to_inputs``) plus
``store`` (``file:///abs/dir`` or ``s3://bucket/prefix``), ``runner`` (``{"kind": "local"}`` or the
Kubernetes Job settings), ``delete_artifacts`` (default false: deleting the resource keeps the
artifact, so a replace can never remove the engine that is serving) and ``provider_version``.

Lifecycle:
* ``check``: validates every input, names the input, value and fix; pins ``key`` to the spec.
* ``diff``: a change to any keyed input (or the store) replaces the engine and names that input;
  other changes update in place.
* ``create``: adopts an intact artifact already stored under the key (cache hit) or builds it.
* ``read``: verifies the artifact and every file's checksum; a missing or corrupt one reads as gone,
  so ``pulumi refresh`` notices an artifact deleted out of band.
* ``update``: re-verifies (rebuilding only if the artifact vanished) and returns all outputs.
* ``delete``: keeps the artifact unless ``delete_artifacts``; a missing artifact is not an error.

The provider object Pulumi pickles holds nothing: store and Kubernetes clients are created inside
each call; credentials come from the environment (boto3's chain, ``KUBECONFIG``) or from the
stack config through ``configure`` (``engines:s3EndpointUrl``, ``engines:awsRegion``,
``engines:awsProfile``, ``engines:kubeconfig``), and are never written into the pickled provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from engines.runners import make_runner, runner_problems
from engines.spec import EngineSpec, SpecError, content_key, normalize, spec_differences
from engines.store import ArtifactMetadata, StoreError, open_store
from engines.store.s3 import S3Options

PROVIDER_VERSION = "1.0.0"
# Inputs that are not part of the spec. "store" moves the artifact, so it replaces like a keyed input.
CONTROL_INPUTS = ("store", "runner", "delete_artifacts", "provider_version")
OUTPUT_NAMES = (
    "uri",
    "primary_uri",
    "sha256",
    "size_bytes",
    "files",
    "tensorrt_version",
    "build_seconds",
    "cache_hit",
    "built_at",
    "versions",
)
_CONFIG_KEYS = {
    "s3_endpoint_url": "engines:s3EndpointUrl",
    "aws_region": "engines:awsRegion",
    "aws_profile": "engines:awsProfile",
    "kubeconfig": "engines:kubeconfig",
}
# The wire sentinel of an input Pulumi does not know yet (preview). The Python SDK turns it into a
# ``pulumi.output.Unknown`` before calling check/diff (rpc.deserialize_properties(..., keep_unknowns=True)),
# so both forms count as unknown.
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def unknown_paths(value: Any, path: str = "") -> list[str]:
    """The property paths in ``value`` whose values Pulumi does not know yet (``[]``: all known)."""
    if isinstance(value, pulumi.output.Unknown) or (isinstance(value, str) and value == UNKNOWN):
        return [path or "<value>"]
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in unknown_paths(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in unknown_paths(v, f"{path}[{i}]")]
    return []


PENDING = "(known during the update)"


def known_or_pending(value: Any) -> Any:
    """``value`` with every unknown replaced by :data:`PENDING`, so comparisons and messages stay plain data."""
    if isinstance(value, pulumi.output.Unknown) or (isinstance(value, str) and value == UNKNOWN):
        return PENDING
    if isinstance(value, Mapping):
        return {k: known_or_pending(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [known_or_pending(v) for v in value]
    return value


def _progress(message: str) -> None:
    # Inside `pulumi up` this reaches the CLI; without an engine pulumi.log writes to stderr.
    pulumi.log.info(message)


class EngineProvider(ResourceProvider):
    # Nothing secret is ever captured (see __getstate__), so the pickled provider need not be a secret.
    serialize_as_secret_always = False

    def __init__(self) -> None:
        super().__init__()
        self._configured: dict[str, str] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Whatever `configure` stored (endpoint, profile, kubeconfig) stays in this process.
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._configured = {}

    def configure(self, req: ConfigureRequest) -> None:
        self._configured = {name: req.config.get(key) for name, key in _CONFIG_KEYS.items() if req.config.get(key)}

    # --- helpers ---

    def _s3(self) -> S3Options:
        return S3Options(
            endpoint_url=self._configured.get("s3_endpoint_url"),
            region=self._configured.get("aws_region"),
            profile=self._configured.get("aws_profile"),
        )

    def _store(self, props: Mapping[str, Any]):
        return open_store(props["store"], self._s3())

    def _outputs(self, props: Mapping[str, Any], meta: ArtifactMetadata, store, cache_hit: bool) -> dict[str, Any]:
        uri = store.artifact_uri(meta.key)
        outs = {k: v for k, v in props.items() if k != "kubeconfig"}
        outs.update(
            key=meta.key,
            uri=uri,
            primary_uri=uri if meta.primary == "." else uri + meta.primary,
            sha256=meta.sha256,
            size_bytes=meta.size_bytes,
            files=[f.path for f in meta.files],
            build_seconds=meta.build_seconds,
            cache_hit=cache_hit,
            built_at=meta.created_at,
            versions=dict(meta.versions),
        )
        if props.get("runtime") == "tensorrt":
            outs["tensorrt_version"] = meta.versions.get("tensorrt", props.get("runtime_version"))
        return outs

    def _ensure(self, props: Mapping[str, Any]) -> tuple[ArtifactMetadata, bool, Any]:
        """Adopt the stored artifact of the spec's key, or build and publish it."""
        spec = EngineSpec.from_inputs(props)
        key = content_key(spec)
        store = self._store(props)
        check = store.verify(key)
        if check.ok:
            _progress(f"engine {spec.model}: cache hit, adopted {key[:16]} from {store.uri}")
            return check.metadata, True, store
        if check.problem:
            _progress(f"engine {spec.model}: stored artifact {key[:16]} is damaged ({check.problem}); rebuilding")
        else:
            _progress(f"engine {spec.model}: no artifact {key[:16]} in {store.uri}; building")
        runner = make_runner(
            props.get("runner") or {"kind": "local"},
            props["store"],
            self._s3(),
            _progress,
            props.get("kubeconfig") or self._configured.get("kubeconfig"),
        )
        meta = runner.run(spec, store)
        _progress(f"engine {spec.model}: published {key[:16]} ({meta.size_bytes} bytes, {meta.build_seconds:.1f}s)")
        return meta, False, store

    # --- lifecycle ---

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures: list[CheckFailure] = []
        inputs = dict(news)
        unknown = unknown_paths({k: v for k, v in news.items() if k != "__provider"})
        if unknown:
            # Preview with values computed by other resources: the inputs go back unvalidated and are
            # checked when the update runs and they are known.
            _progress(f"engine {news.get('model')}: {', '.join(unknown)} not known yet; checked during the update")
            return CheckResult(inputs, [])
        try:
            spec = EngineSpec.from_inputs(news)
        except SpecError as exc:
            failures.extend(CheckFailure(prop, reason) for prop, reason in exc.problems)
            spec = None
        try:
            open_store(news.get("store"))
        except StoreError as exc:
            failures.append(CheckFailure("store", str(exc)))
        failures.extend(CheckFailure("runner", p) for p in runner_problems(news.get("runner") or {"kind": "local"}))
        if not isinstance(news.get("delete_artifacts", False), bool):
            failures.append(CheckFailure("delete_artifacts", f"{news.get('delete_artifacts')!r} must be true or false"))
        if not isinstance(news.get("provider_version"), str):
            failures.append(CheckFailure("provider_version", "must be the string engines.provider.PROVIDER_VERSION"))
        if spec is not None:
            key = content_key(spec)
            if news.get("key") not in (None, key):
                failures.append(
                    CheckFailure(
                        "key",
                        f"{news.get('key')!r} is not the content key of these inputs ({key}); declare engines "
                        "with engines.provider.Engine so the key is derived, never written by hand",
                    )
                )
            inputs["key"] = key
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # An input not known yet (preview) differs from what is deployed until proven otherwise: a keyed one
        # is a rebuild, shown as such.
        news = known_or_pending(news)
        changes = spec_differences(olds, news)
        replaces = [c.name for c in changes if c.keyed]
        in_place = [c.name for c in changes if not c.keyed]
        for name in CONTROL_INPUTS:
            if normalize(olds.get(name)) != normalize(news.get(name)):
                (replaces if name == "store" else in_place).append(name)
        if replaces:
            described = "; ".join(c.describe() for c in changes if c.keyed)
            _progress(f"engine {news.get('model')}: rebuild because {described or 'the store changed'}")
        return DiffResult(
            changes=bool(replaces or in_place),
            replaces=replaces,
            stables=[],
            # Build the new engine before the old resource goes: the serving one is never missing.
            delete_before_replace=False,
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        meta, hit, store = self._ensure(props)
        return CreateResult(meta.key, self._outputs(props, meta, store, hit))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if not props.get("store"):
            raise StoreError(f"engine {id_} cannot be read without its 'store' input; import it with the store set")
        store = self._store(props)
        check = store.verify(id_)
        if not check.ok:
            reason = check.problem or "no longer in the store"
            _progress(f"engine {props.get('model')}: artifact {id_[:16]} {reason}; it will be rebuilt on the next up")
            return ReadResult("", {})
        return ReadResult(id_, self._outputs(props, check.metadata, store, bool(props.get("cache_hit"))))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        meta, hit, store = self._ensure(news)
        return UpdateResult(self._outputs(news, meta, store, hit))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        model = props.get("model")
        if not props.get("delete_artifacts"):
            _progress(f"engine {model}: artifact {id_[:16]} kept in {props.get('store')} (delete_artifacts is false)")
            return
        try:
            removed = self._store(props).delete(id_)
        except FileNotFoundError:
            removed = False
        _progress(f"engine {model}: artifact {id_[:16]} {'removed' if removed else 'was already gone'}")


class Engine(Resource, module="engines", name="Engine"):
    """A content-addressed engine artifact; see the module docstring for inputs and lifecycle."""

    key: pulumi.Output[str]
    uri: pulumi.Output[str]
    primary_uri: pulumi.Output[str]
    sha256: pulumi.Output[str]
    size_bytes: pulumi.Output[int]
    files: pulumi.Output[list]
    runtime_version: pulumi.Output[str]
    tensorrt_version: pulumi.Output[str]
    compute_capability: pulumi.Output[str]
    gpu_sku: pulumi.Output[str]
    precision: pulumi.Output[str]
    build_seconds: pulumi.Output[float]
    cache_hit: pulumi.Output[bool]
    built_at: pulumi.Output[str]
    versions: pulumi.Output[dict]

    def __init__(
        self,
        resource_name: str,
        spec: EngineSpec,
        store: pulumi.Input[str],
        runner: Mapping[str, Any] | None = None,
        delete_artifacts: bool = False,
        kubeconfig: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            **spec.to_inputs(),
            # Derived here as well as in check: known at preview, so the model repository can point at it.
            "key": content_key(spec),
            "store": store,
            "runner": dict(runner or {"kind": "local"}),
            "delete_artifacts": delete_artifacts,
            "provider_version": PROVIDER_VERSION,
        }
        if kubeconfig is not None:
            props["kubeconfig"] = pulumi.Output.secret(kubeconfig)
        for name in OUTPUT_NAMES:
            props.setdefault(name, None)
        super().__init__(EngineProvider(), resource_name, props, opts)
