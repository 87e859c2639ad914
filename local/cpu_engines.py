"""Build the CPU repository's engines through the Engine provider, and serve what it built.

Every model of a rendered CPU repository whose artifact is an ONNX graph (Silero VAD, the MiniLM
encoder, the ASR encoder) gets an engine: the ``Engine`` dynamic provider's own ``check``, ``create``
and ``read`` (``engines.provider.EngineProvider``), called as plain Python with the ONNX Runtime
builder and a local content-addressed store (``.local/store`` by default). ``create`` adopts an intact
artifact already stored under the content key, so a second run builds nothing.

The optimized graph then replaces the exported one in the model's version directory, and the
version's ``artifact.json`` is rewritten with the new file's sha256 plus an ``engine`` record (key,
store, cache hit), so the serving model's integrity check covers what it actually loads. Files are
written under temporary names and renamed, the manifest last.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from engines.builders import spec_for
from engines.provider import PROVIDER_VERSION, EngineProvider
from engines.spec import BuilderSettings, InputProfile, SourceRef, Target, content_key
from engines.store.local import LocalStore
from model_repo.catalog import CATALOG, effective_batching
from platform_spec.digests import file_sha256

ARTIFACT_MANIFEST = "artifact.json"
PRECISION = "fp32"  # ONNX Runtime's CPU provider: fp32 is the precision the parity check holds to 1e-4
OPTIMIZATION_LEVEL = 2  # ORT_ENABLE_EXTENDED: portable across x86 CPUs (see the builder)
SAMPLE_RATE = 16_000
MAX_AUDIO_S = 30
SILERO_FRAME = 576  # 512 samples + 64 of context, what the VAD model feeds Silero per step

# Parity-check shapes (min, opt, max) of each dynamic input, batch axis from the catalog's CPU batching.
# ONNX Runtime does not fix shapes at build time; these are the shapes the optimized model is proven on.
_DYNAMIC: Mapping[str, Mapping[str, Callable[[int], tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]]] = {
    "embed": {
        name: (lambda b: ((1, 1), (min(8, b), 64), (b, 256)))
        for name in ("input_ids", "attention_mask", "token_type_ids")
    },
    "asr": {"audio": lambda b: ((1, SAMPLE_RATE // 10), (1, 3 * SAMPLE_RATE), (b, MAX_AUDIO_S * SAMPLE_RATE))},
    "vad": {
        "input": lambda b: ((1, SILERO_FRAME), (b, SILERO_FRAME), (4 * b, SILERO_FRAME)),
        "state": lambda b: ((2, 1, 128), (2, b, 128), (2, 4 * b, 128)),
    },
}


class CpuEngineError(RuntimeError):
    """An engine could not be built, verified or placed; the message names the model and the fix."""


@dataclass(frozen=True)
class EngineResult:
    model: str
    key: str
    cache_hit: bool
    seconds: float
    size_bytes: int
    source_sha256: str
    served_sha256: str


def profiles_for(model: str) -> tuple[InputProfile, ...]:
    ranges = _DYNAMIC.get(model)
    if ranges is None:
        return ()
    spec = CATALOG.get(model)
    batch = max(1, effective_batching(spec, "cpu").max_batch_size) if spec is not None else 1
    return tuple(InputProfile(name, *make(batch)) for name, make in ranges.items())


def onnx_models(repo: Path) -> list[tuple[str, Path, dict]]:
    """(model, version dir, manifest) of every model whose built artifact is an ONNX graph."""
    found = []
    for manifest_path in sorted(Path(repo).glob(f"*/1/{ARTIFACT_MANIFEST}")):
        manifest = json.loads(manifest_path.read_text())
        if str(manifest.get("main_file", "")).endswith(".onnx"):
            found.append((manifest_path.parent.parent.name, manifest_path.parent, manifest))
    return found


def engine_inputs(model: str, source: Path, source_sha256: str, store_root: Path) -> dict:
    """The Engine resource's inputs for one CPU model, exactly as ``engines.provider.Engine`` declares them."""
    spec = spec_for(
        model,
        "onnxruntime",
        SourceRef(source.resolve().as_uri(), source_sha256, "onnx"),
        Target.cpu(),
        BuilderSettings(precision=PRECISION, optimization_level=OPTIMIZATION_LEVEL, profiles=profiles_for(model)),
    )
    return {
        **spec.to_inputs(),
        "key": content_key(spec),
        "store": store_root.resolve().as_uri(),
        "runner": {"kind": "local"},
        "delete_artifacts": False,
        "provider_version": PROVIDER_VERSION,
    }


def build_engines(repo: Path, store_root: Path, progress: Callable[[str], None] | None = None) -> list[EngineResult]:
    """Build (or adopt) the engine of every ONNX model in ``repo`` and serve it from there."""
    store_root = Path(store_root).resolve()
    store_root.mkdir(parents=True, exist_ok=True)
    provider = EngineProvider()
    results = []
    for model, version_dir, manifest in onnx_models(repo):
        if "engine" in manifest:
            raise CpuEngineError(
                f"{version_dir}: already serves engine {manifest['engine'].get('key', '?')[:16]}; build engines "
                "on a freshly rendered repository (python -m local up renders one each run)"
            )
        main = version_dir / manifest["main_file"]
        recorded = manifest.get("files", {}).get(manifest["main_file"])
        actual = file_sha256(main)
        if recorded != actual:
            raise CpuEngineError(f"{main} has sha256 {actual}, {ARTIFACT_MANIFEST} records {recorded}; render again")
        started = time.monotonic()
        checked = provider.check({}, engine_inputs(model, main, actual, store_root))
        if checked.failures:
            problems = "; ".join(f"{f.property}: {f.reason}" for f in checked.failures)
            raise CpuEngineError(f"engine of {model}: invalid inputs: {problems}")
        created = provider.create(checked.inputs)
        outs = created.outs
        # read() re-verifies every stored file against its checksum, as `pulumi refresh` would.
        read = provider.read(created.id, outs)
        if not read.id:
            raise CpuEngineError(f"engine of {model}: artifact {created.id[:16]} failed verification in {store_root}")
        served = _place(LocalStore(store_root), outs, version_dir, manifest)
        result = EngineResult(
            model=model,
            key=created.id,
            cache_hit=bool(outs["cache_hit"]),
            seconds=time.monotonic() - started,
            size_bytes=int(outs["size_bytes"]),
            source_sha256=actual,
            served_sha256=served,
        )
        results.append(result)
        if progress is not None:
            verb = "adopted" if result.cache_hit else "built"
            progress(f"engine {model}: {verb} {result.key[:16]} ({result.size_bytes} bytes, {result.seconds:.1f}s)")
    return results


def _place(store: LocalStore, outs: Mapping, version_dir: Path, manifest: dict) -> str:
    """Copy the engine's primary file over the version's main file; rewrite the manifest last."""
    key = outs["key"]
    primary = outs["primary_uri"].rsplit("/", 1)[-1]
    engine_file = store.artifact_path(key) / primary
    target = version_dir / manifest["main_file"]
    tmp = target.with_name(f".{target.name}.engine-{os.getpid()}")
    try:
        shutil.copyfile(engine_file, tmp)
        # The serving model checks the file's own digest (the store's sha256 covers the whole artifact).
        sha = file_sha256(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    updated = dict(manifest)
    updated["files"] = {**manifest.get("files", {}), manifest["main_file"]: sha}
    updated["engine"] = {
        "key": key,
        "store": outs["store"],
        "builder": outs["builder"],
        "precision": outs["precision"],
        "runtime_version": outs["runtime_version"],
        "source_sha256": outs["source_sha256"],
        "cache_hit": bool(outs["cache_hit"]),
    }
    manifest_path = version_dir / ARTIFACT_MANIFEST
    tmp_manifest = manifest_path.with_name(f".{ARTIFACT_MANIFEST}.engine-{os.getpid()}")
    tmp_manifest.write_text(json.dumps(updated, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp_manifest, manifest_path)
    return sha
