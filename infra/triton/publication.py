"""Publish the rendered GPU model repository to the S3 model store, one immutable version per rollout.

The repository is rendered by the same function the renderer's GPU-target tests check
(``model_repo.render.render_repository(specs, "gpu", ...)``), into a content-addressed directory under
``build/triton-repository/``; nothing here writes a config of its own. Layout in the bucket::

    triton-repositories/<version>/repository.json          the renderer's manifest (all pools)
    triton-repositories/<version>/<pool>/<model>/config.pbtxt
    triton-repositories/<version>/<pool>/<model>/1/...      Python-backend code, as rendered
    triton-repositories/<version>/<pool>/<model>/1/model.plan        <- the pool's engine (StoreCopy)
    triton-repositories/<version>/<pool>/<llm>/1/checkpoint/...      <- the pool's LLM checkpoint (StoreCopy)
    triton-repositories/<version>/<pool>/<vad>/1/silero_vad.onnx     <- packaged file, sha256-checked
    triton-repositories/<version>/<pool>/<asr>/1/tokens.txt          <- pinned export file (StoreCopy, sha256)
    triton-repositories/<version>/<pool>/<retriever>/1/index.faiss   <- built at render time, sha256-checked

Each GPU pool gets its own Triton repository (``<version>/<pool>``): the models of its role plus the
engines built for its GPU SKU (an engine is valid for one compute capability, so two pools of one
role on different GPUs get different plans). Triton starts on that path with model control ``none``
and loads exactly what is there.

``<version>`` is a digest over the rendered files and the identity of every placed artifact (engine
content keys, packaged-file sha256s, store URIs): the same inputs publish to the same prefix (a no-op
``up``), any change publishes a new prefix, and nothing under a published prefix is ever rewritten.
Old versions are retained (an old ReplicaSet may still start from one during a rollback); expire
them with a lifecycle rule on ``triton-repositories/`` if storage matters.

Artifacts come from the repository manifest (``repository.json``), which names every file a model's
``REQUIRED_FILES`` needs (the renderer refuses a repository that misses one):

* ``tensorrt-engine`` and ``llm-checkpoint``/``lora-adapter`` from the engines mapping (pool -> model
  -> Engine), copied server-side from the engine store;
* ``built`` files (the retriever's index and passages, built by ``model_repo.artifacts`` at render
  time) are rendered files: uploaded with the rest after their sha256 is checked against the manifest;
* ``package://`` files from the installed wheel, sha256-checked;
* ``export://`` / ``hf://`` files (the ASR and TTS token tables that come with the NeMo exports) from
  the model store at the path the source lock pins, copied server-side after checking the pinned
  sha256. Without a lock entry they are copied unpinned from ``sources/<model>/<file>`` (where the
  export step uploads them) with a warning naming the command that pins them;
* ``store://`` files from the bucket itself, at the object version read at copy time.

Calls across pools: BLS reaches only models of the same server. The renderer gives a call to another
pool's model a ``<role>_endpoint_pool`` parameter; the caller reaches that pool's server over gRPC at
the endpoint ``TRITON_GRPC_ENDPOINTS`` names for it. :func:`unreachable_calls` stops the program when a
call has no such parameter or names a pool that does not serve the model.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pulumi
import pulumi_aws as aws

from engines.source_lock import SourceLock, load_lock
from infra.triton.store_copy import StoreCopy
from model_repo.catalog import ModelSpec
from model_repo.render import ENDPOINT_POOL_SUFFIX, MANIFEST, RenderedModel, render_repository
from platform_spec.settings import REPO_ROOT, GpuPool

REPOSITORIES_PREFIX = "triton-repositories"
# Where the export step uploads the files it writes (``export://<model>/<file>``) in the model store.
EXPORTS_PREFIX = "sources/"
# Catalog URI schemes whose bytes the source lock pins (engines.source_lock).
LOCKED_SCHEMES = ("export://", "hf://")
DEFAULT_BUILD_ROOT = REPO_ROOT / "build" / "triton-repository"
VERSION_CHARS = 20


def version_prefix(version: str) -> str:
    return f"{REPOSITORIES_PREFIX}/{version}/"


def pool_repository_uri(bucket: str, version: str, pool: str, endpoint: str | None = None) -> str:
    """Triton's ``--model-repository`` for one pool's repository of a published version
    (``endpoint``: an S3-compatible server, in Triton's ``s3://http://host:port/bucket/...`` form)."""
    host = f"{endpoint.rstrip('/')}/" if endpoint else ""
    return f"s3://{host}{bucket}/{version_prefix(version)}{pool}"


class PublicationError(ValueError):
    """The repository cannot be published as asked; the message names model, artifact and fix."""


# S3 refuses an object with more tags than this (PutObject and PutObjectTagging alike).
S3_OBJECT_TAG_LIMIT = 10


def object_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The platform's tags as S3 object tags, or a PublicationError before any object is declared."""
    if len(tags) > S3_OBJECT_TAG_LIMIT:
        raise PublicationError(
            f"the stack's {len(tags)} tags ({', '.join(sorted(tags))}) exceed the {S3_OBJECT_TAG_LIMIT} S3 allows on "
            f"a repository object; keep at most {S3_OBJECT_TAG_LIMIT - 1} keys in triton-platform:tags (the program "
            "adds platform.io/stack)"
        )
    return dict(tags)


class EngineLike(Protocol):
    """What publication needs of an ``engines.Engine`` resource (or any stand-in with the same outputs)."""

    key: pulumi.Input[str]  # the content key: part of the repository version
    uri: pulumi.Input[str]  # s3://<bucket>/<root>engines/<key>/artifact/


@dataclass(frozen=True)
class EngineRef:
    key: pulumi.Input[str]
    uri: pulumi.Input[str]


def engines_by_pool(declared: Mapping[tuple[str, str], Any]) -> dict[str, dict[str, EngineLike]]:
    """``declare_engines`` output ((engine, pool) -> DeclaredEngine) -> pool -> engine -> Engine."""
    result: dict[str, dict[str, EngineLike]] = {}
    for (engine, pool), item in declared.items():
        result.setdefault(pool, {})[engine] = getattr(item, "resource", item)
    return result


def tree_digest(root: Path) -> str:
    """sha256 over (relative path, sha256 of content) of every file under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@dataclass(frozen=True)
class RenderedRepository:
    """The GPU repository as rendered on disk, at a content-addressed path."""

    root: Path
    digest: str
    models: tuple[RenderedModel, ...]
    manifest: Mapping[str, Any]
    # engine model name -> the public model that calls it
    engine_parents: Mapping[str, str] = field(default_factory=dict)

    def pool_of(self, model: RenderedModel) -> str:
        """The catalog pool (llm | speech) a rendered model belongs to (engines follow their parent)."""
        if model.spec is not None:
            return model.spec.pool
        parent = self.engine_parents.get(model.name)
        if parent is None:
            raise PublicationError(f"rendered model {model.name!r} is neither a catalog model nor a known engine")
        return next(m.spec.pool for m in self.models if m.name == parent and m.spec is not None)

    def models_for(self, pool: GpuPool) -> list[RenderedModel]:
        return [m for m in self.models if self.pool_of(m) == pool.role]

    def files_of(self, model: str) -> list[Path]:
        return sorted(p for p in (self.root / model).rglob("*") if p.is_file())


def render_gpu_repository(
    specs: Sequence[ModelSpec],
    *,
    llm_variants: str = "separate",
    build_root: Path = DEFAULT_BUILD_ROOT,
    python_models_dir: Path | None = None,
) -> RenderedRepository:
    """Render the gpu target into ``build_root/<digest>`` (reused when the same content is there)."""
    build_root = Path(build_root)
    build_root.mkdir(parents=True, exist_ok=True)
    staging = build_root / f".staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        result = render_repository(
            specs, "gpu", staging, llm_variants=llm_variants, python_models_dir=python_models_dir
        )
        digest = tree_digest(staging)
        final = build_root / digest[:VERSION_CHARS]
        if final.is_dir() and tree_digest(final) == digest:
            shutil.rmtree(staging)
        else:
            if final.exists():
                shutil.rmtree(final)  # a damaged earlier render: replace it
            os.rename(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    manifest = json.loads((final / MANIFEST).read_text())
    parents = {engine.name: spec.name for spec in specs for engine in spec.engines}
    return RenderedRepository(final, digest, tuple(result.models), manifest, parents)


def required_engines(rendered: RenderedRepository, gpu_pools: Sequence[GpuPool]) -> list[tuple[str, str]]:
    """(pool, engine name) of every engine-built artifact the repository places (what the program
    must declare with ``infra.engine_declarations.declare_engines``)."""
    needed = []
    for pool in gpu_pools:
        for model in rendered.models_for(pool):
            for artifact in model.artifacts:
                if artifact["kind"] == "lora-adapter":
                    needed.append((pool.name, f"{artifact['path'].rsplit('/', 1)[-1]}_lora"))
                elif artifact["kind"] in ("tensorrt-engine", "llm-checkpoint"):
                    needed.append((pool.name, model.name))
    return needed


@dataclass(frozen=True)
class CrossPoolCall:
    """A model of ``pool`` that calls (``parameter``, a ``*_model`` parameter) a model its pool's server
    does not serve; ``route`` is the GPU pool its ``<role>_endpoint_pool`` names ("" if none)."""

    pool: str
    caller: str
    parameter: str
    callee: str
    route: str

    def __str__(self) -> str:
        via = f"over gRPC on pool {self.route}" if self.route else "through BLS"
        return f"pool {self.pool}: {self.caller} calls {self.callee} ({self.parameter}) {via}"


def cross_pool_calls(rendered: RenderedRepository, gpu_pools: Sequence[GpuPool]) -> list[CrossPoolCall]:
    """Every call from a pool's model to a model that pool's server does not serve."""
    found = []
    for pool in gpu_pools:
        names = {m.name for m in rendered.models_for(pool)}
        for model in rendered.models_for(pool):
            params = {k: v.string_value for k, v in model.config.parameters.items()}
            for key, callee in sorted(params.items()):
                if key.endswith("_model") and callee not in names:
                    route = params.get(key.removesuffix("_model") + ENDPOINT_POOL_SUFFIX, "")
                    found.append(CrossPoolCall(pool.name, model.name, key, callee, route))
    return found


def unreachable_calls(rendered: RenderedRepository, gpu_pools: Sequence[GpuPool]) -> list[str]:
    """Cross-pool calls that would fail at request time, each with its fix.

    BLS reaches only models of the same server; a cross-pool call needs ``<role>_endpoint_pool`` naming
    a GPU pool of this stack whose repository serves the model (the caller finds that pool's server in
    ``TRITON_GRPC_ENDPOINTS``, which is keyed by pool name).
    """
    serving = {pool.name: {m.name for m in rendered.models_for(pool)} for pool in gpu_pools}
    problems = []
    for call in cross_pool_calls(rendered, gpu_pools):
        hosts = sorted(name for name, names in serving.items() if call.callee in names)
        route_key = call.parameter.removesuffix("_model") + ENDPOINT_POOL_SUFFIX
        if not call.route:
            problems.append(
                f"{call}, but pool {call.pool}'s server does not serve it (pools serving it: {hosts}); "
                f"render the caller with {route_key} naming the pool that does"
            )
        elif call.callee not in serving.get(call.route, set()):
            why = "no GPU pool has that name" if call.route not in serving else "that pool does not serve it"
            problems.append(
                f"{call} ({route_key}), but {why} (pools serving {call.callee}: {hosts}); name the GPU pool that "
                f"serves {call.callee} {call.route!r} in triton-platform:gpuPools"
            )
    return problems


def served_models(rendered: RenderedRepository, pool: GpuPool) -> list[str]:
    """Public models a pool serves (what clients call), in render order."""
    return [m.name for m in rendered.models_for(pool) if m.spec is not None]


def _content_type(path: Path) -> str:
    if path.suffix in (".pbtxt", ".py", ".json", ".txt", ".jsonl"):
        return "text/plain; charset=utf-8" if path.suffix != ".json" else "application/json"
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


@dataclass(frozen=True)
class ModelRepositoryArgs:
    rendered: RenderedRepository
    gpu_pools: Sequence[GpuPool]
    bucket: pulumi.Input[str]  # the model-store bucket (Stores.bucket_name)
    # pool name -> catalog/engine model name -> Engine (plans, LLM checkpoints, LoRA adapters)
    engines: Mapping[str, Mapping[str, EngineLike]]
    region: str | None = None
    # The stack's tags, on every object this component uploads (cost reports, ownership).
    tags: Mapping[str, str] = field(default_factory=dict)
    # The stack's source lock (settings.engines.sources_lock): pins export:// and hf:// files to store
    # paths and sha256s. None reads the default lock (engines/sources.lock.json), as declare_engines does.
    sources: SourceLock | None = None


def _check_built(rendered: RenderedRepository, model: str, artifact: Mapping[str, Any]) -> str | None:
    """None if the rendered file a ``built`` entry names is there with its recorded sha256, else the problem."""
    path = rendered.root / model / artifact["path"]
    if not path.is_file():
        return f"model {model!r}: {path} (built from {artifact['source']}) is missing; render the repository again"
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != artifact.get("sha256"):
        return (
            f"model {model!r}: {path} has sha256 {actual}, but repository.json records {artifact.get('sha256')}; "
            f"the rendered repository was changed after rendering: delete {rendered.root} and render again"
        )
    return None


def _resolve_package_file(model: str, artifact: Mapping[str, Any]) -> Path:
    from model_repo.artifacts.sources import package_file

    try:
        return package_file(model, artifact["source"], artifact.get("sha256"))
    except ValueError as exc:  # ArtifactError: names the package, the pin and the fix
        raise PublicationError(str(exc)) from None


class ModelRepository(pulumi.ComponentResource):
    """One immutable published repository version in the model store, with a Triton repository per pool.

    Outputs: ``version``, ``prefix`` (``triton-repositories/<version>/``) and
    ``pool_uris[pool]`` (``s3://<bucket>/triton-repositories/<version>/<pool>``, Triton's
    ``--model-repository``).
    """

    def __init__(self, name: str, args: ModelRepositoryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("platform:triton:ModelRepository", name, None, opts)
        rendered = args.rendered
        placements, identities = self._artifact_plan(args)
        tags = object_tags(args.tags)

        # The version is known only once every engine key is: stay in Output land.
        self.version: pulumi.Output[str] = pulumi.Output.all(*identities).apply(
            lambda ids: hashlib.sha256(
                json.dumps([rendered.digest, ids], sort_keys=True).encode()
            ).hexdigest()[:VERSION_CHARS]
        )
        self.prefix: pulumi.Output[str] = self.version.apply(version_prefix)
        # Every object of a version is retained when a later version replaces it: see the docstring.
        kept = pulumi.ResourceOptions(parent=self, retain_on_delete=True)

        self.objects: list[pulumi.Resource] = []
        self.objects.append(
            aws.s3.BucketObjectv2(
                f"{name}-manifest",
                bucket=args.bucket,
                key=self.prefix.apply(lambda p: p + MANIFEST),
                source=pulumi.FileAsset(str(rendered.root / MANIFEST)),
                content_type="application/json",
                tags=tags,
                opts=kept,
            )
        )
        self.pool_uris: dict[str, pulumi.Output[str]] = {}
        self.served: dict[str, list[str]] = {}
        for pool in args.gpu_pools:
            models = rendered.models_for(pool)
            if not models:
                raise PublicationError(
                    f"GPU pool {pool.name!r} (role {pool.role}) serves no enabled model; enable a {pool.role} "
                    "model in the stack's models config or remove the pool"
                )
            self.served[pool.name] = served_models(rendered, pool)
        for call in cross_pool_calls(rendered, args.gpu_pools):
            pulumi.log.info(f"{call} (its endpoint comes from TRITON_GRPC_ENDPOINTS)", resource=self)
        for pool in args.gpu_pools:
            models = rendered.models_for(pool)
            for model in models:
                for path in rendered.files_of(model.name):
                    rel = path.relative_to(rendered.root).as_posix()
                    self.objects.append(
                        aws.s3.BucketObjectv2(
                            f"{name}-{pool.name}-{rel.replace('/', '-')}",
                            bucket=args.bucket,
                            key=self.prefix.apply(lambda p, pool=pool.name, rel=rel: f"{p}{pool}/{rel}"),
                            source=pulumi.FileAsset(str(path)),
                            content_type=_content_type(path),
                            tags=tags,
                            opts=kept,
                        )
                    )
            for placement in placements.get(pool.name, []):
                self.objects.append(self._place(name, args, pool, placement, kept, tags))
            self.pool_uris[pool.name] = pulumi.Output.all(args.bucket, self.version).apply(
                lambda a, pool=pool.name: pool_repository_uri(a[0], a[1], pool)
            )
        self.register_outputs(
            {"version": self.version, "prefix": self.prefix, "poolUris": self.pool_uris, "served": self.served}
        )

    # --- artifacts -------------------------------------------------------------------------------

    @staticmethod
    def check(args: ModelRepositoryArgs) -> None:
        """Raise PublicationError if any artifact cannot be placed or the objects cannot carry the stack's
        tags (call before declaring anything)."""
        object_tags(args.tags)
        ModelRepository._artifact_plan(args)

    @staticmethod
    def _artifact_plan(args: ModelRepositoryArgs) -> tuple[dict[str, list[dict[str, Any]]], list[Any]]:
        """Per pool, what to place where; plus the identities that enter the version digest."""
        rendered = args.rendered
        placements: dict[str, list[dict[str, Any]]] = {}
        identities: list[Any] = []
        problems: list[str] = unreachable_calls(rendered, args.gpu_pools)
        lock = args.sources if args.sources is not None else load_lock()
        for pool in args.gpu_pools:
            pool_engines = args.engines.get(pool.name, {})
            for model in rendered.models_for(pool):
                for artifact in model.artifacts:
                    kind, source = artifact["kind"], artifact["source"]
                    dest = f"{model.name}/{artifact['path']}"
                    entry: dict[str, Any] = {"model": model.name, "kind": kind, "source": source, "dest": dest}
                    if kind in ("tensorrt-engine", "llm-checkpoint", "lora-adapter"):
                        # A LoRA adapter is engine "<variant>_lora" (engines.catalog_engines), placed at lora/<variant>.
                        engine_name = (
                            f"{artifact['path'].rsplit('/', 1)[-1]}_lora" if kind == "lora-adapter" else model.name
                        )
                        engine = pool_engines.get(engine_name)
                        if engine is None:
                            problems.append(
                                f"pool {pool.name}: model {model.name!r} needs the {kind} of {engine_name!r} "
                                f"(from {source}) at {dest}, but no Engine was given for ({pool.name}, "
                                f"{engine_name}); declare one per enabled model per GPU pool"
                            )
                            continue
                        entry["engine"] = engine
                        entry["copy_kind"] = "engine-file" if kind == "tensorrt-engine" else "engine-tree"
                        identities.append(pulumi.Output.concat(pool.name, ":", dest, "=", engine.key))
                    elif kind == "file" and source.startswith("package://"):
                        try:
                            entry["path"] = _resolve_package_file(model.name, artifact)
                        except PublicationError as exc:
                            problems.append(str(exc))
                            continue
                        sha = artifact.get("sha256") or hashlib.sha256(entry["path"].read_bytes()).hexdigest()
                        identities.append(f"{pool.name}:{dest}={sha}")
                    elif kind == "built":
                        # A rendered file (uploaded with the others, its bytes in the version digest): check
                        # it is what the renderer built before it becomes the only copy serving reads.
                        problem = _check_built(rendered, model.name, artifact)
                        if problem:
                            problems.append(f"pool {pool.name}: {problem}")
                        continue
                    elif kind == "file" and source.startswith(LOCKED_SCHEMES):
                        pin = lock.entries.get(source)
                        if pin is None and args.sources is not None:
                            problems.append(
                                f"pool {pool.name}: model {model.name!r} needs {source} at {dest}, which the source "
                                f"lock {lock.path} does not pin; upload it to the model store and run `python -m "
                                f"engines.source_lock record {source} store://<path>`"
                            )
                            continue
                        entry["copy_kind"] = "object"
                        if pin is None:
                            entry["store_key"] = EXPORTS_PREFIX + source.split("://", 1)[1]
                            entry["unpinned"] = True
                            identities.append(f"{pool.name}:{dest}={source}")
                        elif not pin.uri.startswith("store://"):
                            problems.append(
                                f"pool {pool.name}: the source lock pins {source} to {pin.uri}; a file served from "
                                "a repository must live in the model store (store://...); record it there"
                            )
                            continue
                        else:
                            entry["store_key"] = pin.uri.removeprefix("store://")
                            entry["sha256"] = pin.sha256
                            identities.append(f"{pool.name}:{dest}={pin.sha256}")
                    elif kind == "file" and source.startswith("store://"):
                        entry["store_key"] = source.removeprefix("store://")
                        entry["copy_kind"] = "object"
                        # The object's version is pinned when copied; the URI enters the digest.
                        identities.append(f"{pool.name}:{dest}={source}")
                    else:
                        problems.append(
                            f"pool {pool.name}: model {model.name!r} artifact {source!r} (kind {kind}) has no "
                            "publication rule; use a package://, store://, export:// (source lock), built or "
                            "engine-built artifact"
                        )
                        continue
                    placements.setdefault(pool.name, []).append(entry)
        if problems:
            raise PublicationError("cannot publish the model repository:\n" + "\n".join(f"  - {p}" for p in problems))
        return placements, identities

    def _place(
        self,
        name: str,
        args: ModelRepositoryArgs,
        pool: GpuPool,
        entry: dict[str, Any],
        opts: pulumi.ResourceOptions,
        tags: Mapping[str, str],
    ) -> pulumi.Resource:
        resource_name = f"{name}-{pool.name}-{entry['dest'].replace('/', '-')}"
        tree = entry.get("copy_kind") == "engine-tree"
        destination = self.prefix.apply(
            lambda p, d=entry["dest"], pool=pool.name: f"{p}{pool}/{d}" + ("/" if tree else "")
        )
        if "path" in entry:
            return aws.s3.BucketObjectv2(
                resource_name,
                bucket=args.bucket,
                key=destination,
                source=pulumi.FileAsset(str(entry["path"])),
                content_type="application/octet-stream",
                tags=dict(tags),
                opts=opts,
            )
        if "store_key" in entry:
            source: pulumi.Input[str] = pulumi.Output.concat("s3://", args.bucket, "/", entry["store_key"])
        else:
            source = entry["engine"].uri
        if entry.get("unpinned"):
            pulumi.log.warn(
                f"{entry['source']} is not pinned in the source lock: {entry['dest']} is copied from "
                f"store://{entry['store_key']} as it is at copy time. Pin it: python -m engines.source_lock record "
                f"{entry['source']} store://{entry['store_key']} --store-uri s3://<model-store bucket>/",
                resource=self,
            )
        return StoreCopy(
            resource_name,
            bucket=args.bucket,
            source=source,
            kind=entry["copy_kind"],
            destination=destination,
            region=args.region,
            sha256=entry.get("sha256"),
            opts=opts,
        )
