"""Rendering the Triton repository: schema round trip, per-target backends, validation, atomic writes.

These tests exercise the renderer's own contract: it copies whatever Python sources it is given and
calls the artifact builder it is given. The source directory here holds minimal `model.py` files and
the builder writes a small file, so the renderer is tested without building real weights (the full
repository with the real models and artifacts is loaded into a real Triton by the serving tests).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from model_repo import catalog, render
from model_repo.render import RenderError

KIND_GPU = mc.ModelInstanceGroup.KIND_GPU
KIND_CPU = mc.ModelInstanceGroup.KIND_CPU


@pytest.fixture
def python_models(tmp_path: Path) -> Path:
    """A python_models tree with a model.py for every directory the catalog names, plus _common/."""
    root = tmp_path / "python_models"
    for spec in catalog.CATALOG.values():
        for serving in spec.serving.values():
            if serving.python_model:
                d = root / serving.python_model
                d.mkdir(parents=True, exist_ok=True)
                (d / "model.py").write_text(f"# {serving.python_model}\n")
                (d / "__pycache__").mkdir(exist_ok=True)
                (d / "__pycache__" / "junk.pyc").write_bytes(b"x")
    (root / "_common").mkdir()
    (root / "_common" / "__init__.py").write_text("AUDIO_RATE = 16000\n")
    return root


def builder(spec: catalog.ModelSpec, dest: Path) -> Path:
    path = dest / "weights.bin"
    path.write_bytes(spec.target("cpu").artifact.uri.encode())
    return path


def parse_all(root: Path) -> dict[str, mc.ModelConfig]:
    return {
        d.name: text_format.Parse((d / "config.pbtxt").read_text(), mc.ModelConfig())
        for d in root.iterdir()
        if d.is_dir()
    }


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".rendering-" in p.name or ".old-" in p.name)


# --- gpu target -----------------------------------------------------------------------------------


@pytest.fixture
def gpu_repo(tmp_path, python_models) -> Path:
    specs = catalog.select({"asr": _Sel(True, "fp32")})
    render.render_repository(specs, "gpu", tmp_path / "gpu", python_models_dir=python_models)
    return tmp_path / "gpu"


class _Sel:
    def __init__(self, enabled: bool, precision: str | None = None):
        self.enabled, self.precision = enabled, precision


def test_gpu_configs_parse_with_tritons_schema_and_use_the_right_backend_per_role(gpu_repo):
    configs = parse_all(gpu_repo)
    engines = {e.name: spec for spec in catalog.CATALOG.values() for e in spec.engines}
    assert set(configs) == set(catalog.CATALOG) | set(engines)
    for name, cfg in configs.items():
        assert cfg.name == name
        if name in engines:
            # ONNX-built models: TensorRT plans on the GPU, built at the owner's precision.
            assert cfg.platform == "tensorrt_plan" and not cfg.backend
            assert cfg.default_model_filename == "model.plan"
            assert [g.kind for g in cfg.instance_group] == [KIND_GPU]
            assert cfg.parameters["engine_of"].string_value == engines[name].name
        elif cfg.parameters["role"].string_value == "llm":
            # TensorRT-LLM LLM API in the Python backend: in-flight batching, streamed tokens, pinned GPU.
            assert cfg.backend == "python"
            assert cfg.max_batch_size == 0 and not cfg.HasField("dynamic_batching")
            assert cfg.model_transaction_policy.decoupled
            assert [(g.kind, list(g.gpus)) for g in cfg.instance_group] == [(KIND_GPU, [0])]
            assert cfg.parameters["llm_backend"].string_value == "pytorch"
            assert cfg.parameters["precision"].string_value == "fp8"
        else:
            assert cfg.backend == "python"
    # The ASR pre/post model calls its engines by name, and they were built at the selected precision.
    assert configs["asr"].parameters["encoder_model"].string_value == "asr_encoder"
    assert configs["asr_encoder"].parameters["precision"].string_value == "fp32"
    assert configs["tts_hifigan"].parameters["precision"].string_value == "fp16"


def test_gpu_repository_has_no_unresolved_text_and_bls_references_resolve(gpu_repo):
    configs = parse_all(gpu_repo)
    for d in gpu_repo.iterdir():
        text = (d / "config.pbtxt").read_text() if d.is_dir() else d.read_text()
        assert "${" not in text and "{{" not in text and "}}" not in text, d
    pipeline = configs["voice_pipeline"]
    refs = {k: v.string_value for k, v in pipeline.parameters.items() if k.endswith("_model")}
    assert set(refs.values()) == set(catalog.PIPELINE.depends_on)
    assert set(refs.values()) <= set(configs)
    assert pipeline.model_transaction_policy.decoupled


def test_gpu_manifest_lists_what_the_deployment_must_place(gpu_repo):
    manifest = json.loads((gpu_repo / render.MANIFEST).read_text())
    assert manifest["target"] == "gpu"
    by_name = {m["name"]: m for m in manifest["models"]}
    assert by_name["asr_encoder"]["artifacts"] == [
        {"path": "1/model.plan", "kind": "tensorrt-engine", "source": "export://asr/encoder.onnx", "precision": "fp32"}
    ]
    assert by_name["llm_chat"]["artifacts"][0]["kind"] == "llm-checkpoint"
    assert by_name["vad"]["artifacts"][0]["sha256"] == catalog.SILERO_VAD.sha256
    assert all(m["weights"] == catalog.WEIGHTS_PRODUCTION for m in manifest["models"])


def test_gpu_manifest_names_every_file_the_gpu_models_load(tmp_path):
    """With the real model code: every REQUIRED_FILES entry is rendered or listed for the deployment to place,
    each with where it comes from (catalog docstring, GPU files)."""
    out = tmp_path / "gpu"
    render.render_repository(catalog.select({}), "gpu", out)
    by_name = {m["name"]: m for m in json.loads((out / render.MANIFEST).read_text())["models"]}
    placed = {name: {a["path"]: a for a in m["artifacts"]} for name, m in by_name.items()}
    assert placed["embed"]["1/tokenizer.json"] == {
        "path": "1/tokenizer.json", "kind": "file", "source": catalog.MINILM_TOKENIZER.uri,
        "sha256": catalog.MINILM_TOKENIZER.sha256,
    }  # fmt: skip
    assert placed["asr"]["1/tokens.txt"]["source"] == "export://asr/tokens.txt"
    assert placed["tts"]["1/tokens.json"]["source"] == "export://tts/tokens.json"
    built = placed["retriever"]
    assert set(built) == {"1/index.faiss", "1/passages.jsonl", "1/artifact.json"}
    for path, entry in built.items():
        assert entry["kind"] == "built" and entry["source"] == catalog.KNOWLEDGE_BASE_INDEX.uri
        assert entry["sha256"] == hashlib.sha256((out / "retriever" / path).read_bytes()).hexdigest()
    configs = parse_all(out)
    for name in by_name:
        model_py = out / name / "1" / "model.py"
        if not model_py.is_file():
            continue
        params = {k: v.string_value for k, v in configs[name].parameters.items()}
        for rel in render.required_files(model_py, params).values():
            assert (out / name / "1" / rel).exists() or f"1/{rel}" in placed[name], (name, rel)


def test_a_file_the_model_loads_but_nobody_places_is_refused(tmp_path):
    specs = catalog.select({})
    embed = next(s for s in specs if s.name == "embed")
    bare = dataclasses.replace(embed.target("gpu"), files={})
    specs = [dataclasses.replace(s, serving={**s.serving, "gpu": bare}) if s is embed else s for s in specs]
    unplaced = r"embed: model.py loads 1/tokenizer.json \(REQUIRED_FILES\['tokenizer_file'\]\), which is neither"
    with pytest.raises(RenderError, match=unplaced):
        render.render_repository(specs, "gpu", tmp_path / "g")
    assert not (tmp_path / "g").exists() and leftovers(tmp_path) == []


def test_required_files_are_read_from_the_model_source_without_importing_it(tmp_path):
    model = tmp_path / "model.py"
    model.write_text('import triton_python_backend_utils\nREQUIRED_FILES = {"tokens_file": "tokens.txt"}\n')
    assert render.required_files(model, {}) == {"tokens_file": "tokens.txt"}
    assert render.required_files(model, {"tokens_file": "v2.txt"}) == {"tokens_file": "v2.txt"}
    model.write_text("REQUIRED_FILES = dict(a=NAME)\n")
    with pytest.raises(RenderError, match="REQUIRED_FILES must be a literal dict"):
        render.required_files(model, {})
    model.write_text("x = 1\n")
    assert render.required_files(model, {}) == {}


def test_only_a_call_to_another_pools_model_is_routed_to_that_pool():
    by_target = {t: {m.name: m.config for m in render.rendered_models(catalog.select({}), t)} for t in catalog.TARGETS}
    routes = {
        (t, name, k): v.string_value
        for t, configs in by_target.items()
        for name, config in configs.items()
        for k, v in config.parameters.items()
        if k.endswith(render.ENDPOINT_POOL_SUFFIX)
    }
    # gpu: the pipeline (speech pool) reaches llm_chat on the llm pool's server; cpu: one server, all BLS.
    assert routes == {("gpu", "voice_pipeline", "llm_endpoint_pool"): "llm"}


def test_audio_models_get_the_expected_sample_rate_parameter(gpu_repo):
    configs = parse_all(gpu_repo)
    for name in ("anc", "vad", "asr", "voice_pipeline"):
        assert configs[name].parameters["sample_rate"].string_value == "16000"
        rate = next(i for i in configs[name].input if i.name == "SAMPLE_RATE")
        assert rate.data_type == mc.TYPE_INT32 and list(rate.dims) == [1]


def test_engine_scalar_reshape_survives_the_round_trip(gpu_repo):
    cfg = parse_all(gpu_repo)["asr_encoder"]
    length = next(i for i in cfg.input if i.name == "length")
    assert length.HasField("reshape") and list(length.reshape.shape) == []


def test_engines_warm_up_at_their_profiles_optimal_shapes(gpu_repo):
    configs = parse_all(gpu_repo)
    encoder = configs["asr_encoder"].model_warmup
    assert len(encoder) == 1 and encoder[0].batch_size == 8
    assert list(encoder[0].inputs["audio_signal"].dims) == [128, 800] and encoder[0].inputs["audio_signal"].random_data
    assert list(encoder[0].inputs["length"].dims) == [1] and encoder[0].inputs["length"].zero_data
    decoder = configs["asr_decoder_joint"].model_warmup[0]  # not batched by Triton: whole shapes, batch 4 inside
    assert decoder.batch_size == 1 and list(decoder.inputs["input_states_1"].dims) == [2, 4, 640]
    assert not configs["asr"].model_warmup, "Python glue has no engine context to set up"


def test_dynamically_batched_models_have_a_bounded_queue(gpu_repo):
    for name, config in parse_all(gpu_repo).items():
        if config.max_batch_size > 0:
            assert config.dynamic_batching.default_queue_policy.max_queue_size == 16 * config.max_batch_size, name


def test_lora_mode_serves_the_variant_as_an_adapter_on_its_base(tmp_path, python_models):
    result = render.render_repository(
        catalog.select({}), "gpu", tmp_path / "lora", python_models_dir=python_models, llm_variants="lora"
    )
    assert "llm_support" not in result.names
    base = parse_all(tmp_path / "lora")["llm_chat"]
    assert json.loads(base.parameters["lora_adapters"].string_value) == {
        "llm_support": catalog.LLM_SUPPORT.lora.adapter.uri
    }
    lora_input = next(i for i in base.input if i.name == "LORA_NAME")
    assert lora_input.optional and lora_input.data_type == mc.TYPE_STRING


def test_lora_mode_rejects_a_variant_at_another_precision_than_its_base(tmp_path, python_models):
    specs = catalog.select({"llm_support": _Sel(True, "bf16")})
    with pytest.raises(RenderError, match=r"'llm_support' precision 'bf16' differs from its base 'llm_chat'"):
        render.render_repository(specs, "gpu", tmp_path / "x", python_models_dir=python_models, llm_variants="lora")
    assert not (tmp_path / "x").exists()


def test_lora_mode_needs_the_base(tmp_path, python_models):
    specs = catalog.select({"llm_chat": _Sel(False), "voice_pipeline": _Sel(False)})
    with pytest.raises(RenderError, match=r"adapter on 'llm_chat', which is not selected"):
        render.rendered_models(specs, "gpu", llm_variants="lora")


def test_overrides_reach_the_rendered_config(tmp_path, python_models):
    (tmp_path / "ov").mkdir()
    (tmp_path / "ov" / "gpu.yaml").write_text("models:\n  asr: {max_batch_size: 4, instance_count: 3}\n")
    specs = catalog.apply_overrides(catalog.select({}), "gpu", catalog.load_overrides("gpu", tmp_path / "ov"))
    render.render_repository(specs, "gpu", tmp_path / "g", python_models_dir=python_models)
    asr = parse_all(tmp_path / "g")["asr"]
    assert asr.max_batch_size == 4 and list(asr.dynamic_batching.preferred_batch_size) == [4]
    assert asr.instance_group[0].count == 3


# --- cpu target -----------------------------------------------------------------------------------


def test_cpu_target_is_python_backend_on_cpu_everywhere_with_built_artifacts(tmp_path, python_models):
    out = tmp_path / "cpu"
    result = render.render_repository(
        catalog.select({}), "cpu", out, python_models_dir=python_models, artifact_builder=builder
    )
    configs = parse_all(out)
    assert set(configs) == set(catalog.CATALOG)  # no engines on cpu
    for name, cfg in configs.items():
        assert cfg.backend == "python" and not cfg.platform, name
        assert [g.kind for g in cfg.instance_group] == [KIND_CPU], name
        assert "precision" not in cfg.parameters
        version = out / name / "1"
        assert (version / "model.py").is_file()
        assert (version / "_common" / "__init__.py").is_file()
        assert not (version / "__pycache__").exists()
    manifest = {m["name"]: m for m in json.loads((out / render.MANIFEST).read_text())["models"]}
    vad_artifact = manifest["vad"]["artifacts"][0]
    assert vad_artifact["path"] == "1/weights.bin" and vad_artifact["source"] == catalog.SILERO_VAD.uri
    assert (out / "vad" / "1" / "weights.bin").read_bytes() == catalog.SILERO_VAD.uri.encode()
    assert manifest["llm_chat"]["weights"] == catalog.WEIGHTS_PACKAGED
    assert manifest["voice_pipeline"]["artifacts"] == []
    assert [m.weights for m in result.models if m.name == "tts"] == [catalog.WEIGHTS_PACKAGED]


def test_public_interface_is_identical_on_both_targets(tmp_path, python_models):
    specs = catalog.select({})
    render.render_repository(specs, "gpu", tmp_path / "g", python_models_dir=python_models)
    render.render_repository(specs, "cpu", tmp_path / "c", python_models_dir=python_models, artifact_builder=builder)
    gpu, cpu = parse_all(tmp_path / "g"), parse_all(tmp_path / "c")
    for name in catalog.CATALOG:
        for field in ("input", "output", "max_batch_size", "model_transaction_policy"):
            assert getattr(gpu[name], field) == getattr(cpu[name], field), (name, field)


# --- validation and atomicity ---------------------------------------------------------------------


def test_validate_repository_catches_placeholders_dangling_references_and_bad_dims(tmp_path, python_models):
    out = tmp_path / "r"
    render.render_repository(catalog.select({}), "gpu", out, python_models_dir=python_models)
    render.validate_repository(out, "gpu")  # the rendered repository is valid

    cfg = out / "vad" / "config.pbtxt"
    original = cfg.read_text()
    broken = original.replace('string_value: "16000"', 'string_value: "${SAMPLE_RATE}"')
    assert broken != original
    cfg.write_text(broken)
    with pytest.raises(RenderError, match=r"vad: unresolved placeholder '\$\{'"):
        render.validate_repository(out, "gpu")

    cfg.write_text(original)
    pipeline = out / "voice_pipeline" / "config.pbtxt"
    pipeline.write_text(pipeline.read_text().replace('string_value: "asr"', 'string_value: "asr_v2"'))
    with pytest.raises(RenderError, match=r"parameter asr_model = 'asr_v2' names no model"):
        render.validate_repository(out, "gpu")
    render.render_repository(catalog.select({}), "gpu", out, python_models_dir=python_models, replace=True)

    embed = out / "embed" / "config.pbtxt"
    embed.write_text(embed.read_text().replace("dims: 384", "dims: 0"))
    with pytest.raises(RenderError, match=r"embed: output 'EMBEDDING' dims \[0\]"):
        render.validate_repository(out, "gpu")

    embed.write_text(embed.read_text() + "\nnot_a_field: 1\n")
    with pytest.raises(RenderError, match="not a valid Triton model config"):
        render.validate_repository(out, "gpu")


def test_cpu_validation_refuses_gpu_configs(tmp_path, python_models):
    render.render_repository(catalog.select({}), "gpu", tmp_path / "g", python_models_dir=python_models)
    with pytest.raises(RenderError) as err:
        render.validate_repository(tmp_path / "g", "cpu")
    assert "platform 'tensorrt_plan' not allowed on cpu" in str(err.value)
    assert "the cpu target runs KIND_CPU only" in str(err.value)


def test_a_failing_artifact_build_leaves_nothing_behind(tmp_path, python_models):
    def broken(spec, dest):
        if spec.name == "llm_chat":
            raise ValueError(f"cannot build {spec.target('cpu').artifact.uri}")
        return builder(spec, dest)

    out = tmp_path / "out"
    with pytest.raises(RenderError, match=r"model 'llm_chat': building its cpu artifact failed: cannot build"):
        render.render_repository(
            catalog.select({}), "cpu", out, python_models_dir=python_models, artifact_builder=broken
        )
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_a_builder_writing_outside_its_directory_is_refused(tmp_path, python_models):
    def escaping(spec, dest):
        path = tmp_path / f"{spec.name}.bin"
        path.write_bytes(b"x")
        return path

    with pytest.raises(RenderError, match="which is not inside"):
        render.render_repository(
            catalog.select({}), "cpu", tmp_path / "o", python_models_dir=python_models, artifact_builder=escaping
        )
    assert not (tmp_path / "o").exists() and leftovers(tmp_path) == []


def test_missing_python_model_names_the_model_and_path_and_writes_nothing(tmp_path, python_models):
    (python_models / "gpu" / "asr" / "model.py").unlink()
    with pytest.raises(RenderError, match=r"model 'asr': Python-backend code missing: .*gpu/asr/model.py"):
        render.render_repository(catalog.select({}), "gpu", tmp_path / "o", python_models_dir=python_models)
    assert not (tmp_path / "o").exists() and leftovers(tmp_path) == []


def test_existing_output_is_kept_unless_replace_and_a_failed_replace_keeps_the_old(tmp_path, python_models):
    out = tmp_path / "repo"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(RenderError, match="is not empty; pass replace=True"):
        render.render_repository(catalog.select({}), "gpu", out, python_models_dir=python_models)
    assert (out / "precious.txt").read_text() == "keep me"

    (python_models / "voice_pipeline" / "model.py").unlink()
    with pytest.raises(RenderError, match="voice_pipeline"):
        render.render_repository(catalog.select({}), "gpu", out, python_models_dir=python_models, replace=True)
    assert (out / "precious.txt").read_text() == "keep me"

    (python_models / "voice_pipeline" / "model.py").write_text("# back\n")
    render.render_repository(catalog.select({}), "gpu", out, python_models_dir=python_models, replace=True)
    assert not (out / "precious.txt").exists() and (out / "voice_pipeline" / "config.pbtxt").is_file()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"target": "tpu"}, "target 'tpu' is not one of"),
        ({"llm_variants": "merged"}, "llm_variants 'merged' is not one of"),
    ],
)
def test_bad_render_arguments(tmp_path, python_models, kwargs, expected):
    args = {"target": "gpu", **kwargs}
    with pytest.raises(RenderError, match=expected):
        render.render_repository(catalog.select({}), out=tmp_path / "o", python_models_dir=python_models, **args)
    assert not (tmp_path / "o").exists()


def test_a_model_without_its_dependency_is_refused(tmp_path, python_models):
    specs = [s for s in catalog.select({}) if s.name != "retriever"]
    with pytest.raises(RenderError, match=r"'voice_pipeline' calls 'retriever', which is not selected"):
        render.render_repository(specs, "gpu", tmp_path / "o", python_models_dir=python_models)


def test_empty_selection_is_refused(tmp_path):
    with pytest.raises(RenderError, match="no models selected"):
        render.render_repository([], "cpu", tmp_path / "o")


def test_validation_resolves_ensemble_steps():
    ensemble = mc.ModelConfig(name="combo", platform="ensemble", max_batch_size=0)
    ensemble.input.add(name="X", data_type=mc.TYPE_FP32, dims=[-1])
    ensemble.output.add(name="Y", data_type=mc.TYPE_FP32, dims=[-1])
    ensemble.instance_group.add(kind=KIND_CPU, count=1)
    ensemble.ensemble_scheduling.step.add(model_name="missing_model", model_version=-1)
    with pytest.raises(RenderError) as err:
        render.validate_configs({"combo": ensemble}, "cpu")
    assert "ensemble step calls 'missing_model'" in str(err.value)
    assert "platform 'ensemble' not allowed on cpu" in str(err.value)
