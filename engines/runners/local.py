"""Run a build in this process: fetch and verify the source, build into scratch space, publish atomically.

This is the CPU target's runner (local runs, CI) and also what the Kubernetes build Job executes on
the GPU node (``engines.job_main``), so both paths share one build-and-publish sequence. A build that
raises leaves nothing in the store: the scratch directory is discarded and publishing never began.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from engines.builders import builder_for
from engines.builders.base import BuildContext, BuildError, BuildLog
from engines.sources import SourceError, fetch_source
from engines.spec import EngineSpec, content_key
from engines.store.base import ArtifactMetadata, ArtifactStore, BuildRecord, StoreError
from engines.store.s3 import S3Options

BUILD_LOG_NAME = "build.log"


class LocalRunner:
    def __init__(
        self,
        s3: S3Options | None = None,
        progress: Callable[[str], None] | None = None,
        scratch_root: Path | None = None,
    ):
        self.s3 = s3
        self.progress = progress
        self.scratch_root = scratch_root

    def run(self, spec: EngineSpec, store: ArtifactStore) -> ArtifactMetadata:
        key = content_key(spec)
        builder = builder_for(spec.builder)
        if builder.code_version != spec.builder_code_version:
            raise BuildError(
                f"{spec.model} was declared for {spec.builder} builder code {spec.builder_code_version} but this "
                f"runner has {builder.code_version}; run the provider and the program from the same checkout"
            )
        log = BuildLog(self.progress)
        log.info(f"build {spec.model}: {spec.builder} {spec.settings.precision} for {_target(spec)}, key {key[:16]}")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"engine-{key[:12]}-", dir=self.scratch_root) as scratch:
            workdir, output = Path(scratch) / "work", Path(scratch) / "artifact"
            workdir.mkdir()
            output.mkdir()
            try:
                source = fetch_source(spec.source, workdir, self.s3, store_uri=store.uri)
                log.info(f"source {spec.source.uri} verified (sha256 {spec.source.sha256[:16]}...)")

                def fetch(ref, what):
                    return fetch_source(ref, workdir / "inputs", self.s3, what, store.uri)

                ctx = BuildContext(workdir, output, log, store, fetch)
                result = builder.build(spec, source, ctx)
            except (BuildError, StoreError):
                raise
            except SourceError as exc:
                raise BuildError(str(exc), log.text()) from None
            except Exception as exc:  # noqa: BLE001  (tool errors become one clear build failure)
                raise BuildError(
                    f"{spec.builder} build of {spec.model} failed: {type(exc).__name__}: {exc}", log.text()
                ) from exc
            seconds = time.monotonic() - started
            log.info(f"built in {seconds:.2f}s; publishing to {store.uri}")
            (output / BUILD_LOG_NAME).write_text(log.text())
            record = BuildRecord(
                key=key,
                builder=spec.builder,
                primary=result.primary,
                inputs=spec.to_inputs(),
                versions={**result.versions, "builder_code": builder.code_version},
                build_seconds=seconds,
                log=log.text(),
            )
            return store.publish(record, output)


def _target(spec: EngineSpec) -> str:
    t = spec.target
    where = f"{t.gpu_sku} (sm {t.compute_capability})" if t.gpu_sku else "cpu"
    return f"{where}, {t.runtime} {t.runtime_version}"
