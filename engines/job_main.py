"""Entry point of the engine build Job: ``python -m engines.job_main --spec spec.json --store s3://...``.

The Kubernetes runner mounts the spec (the Engine's inputs, JSON) and this package (a zip on
PYTHONPATH) from a ConfigMap into the TensorRT image of the serving release, on the target GPU
pool. The Job's service account (Pod Identity/IRSA) reads the source and publishes to the store.
Exit status 0 means the artifact is published under the spec's key.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engines.builders.base import BuildError
from engines.runners.local import LocalRunner
from engines.spec import EngineSpec, SpecError, content_key
from engines.store import StoreError, open_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--expect-key", help="refuse to build if the spec hashes to another key")
    args = parser.parse_args(argv)
    try:
        spec = EngineSpec.from_inputs(json.loads(args.spec.read_text()))
        key = content_key(spec)
        if args.expect_key and key != args.expect_key:
            message = f"spec hashes to {key}, the Job was created for {args.expect_key}; builder code differs"
            print(message, file=sys.stderr)
            return 2
        meta = LocalRunner(progress=lambda m: print(m, flush=True)).run(spec, open_store(args.store))
    except (SpecError, BuildError, StoreError) as exc:
        print(f"engine build failed: {exc}", file=sys.stderr, flush=True)
        return 1
    print(json.dumps({"key": meta.key, "sha256": meta.sha256, "size_bytes": meta.size_bytes}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
