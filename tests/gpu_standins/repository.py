"""The gpu target's speech-pool repository as the renderer writes it, with engine stand-ins where the plans go.

``speech_pool(out)`` renders the real ``gpu`` repository of the whole catalog and keeps the speech pool's models
(the LLMs live on their own pool's server), then places what the deployment would place:

* each TensorRT engine (``model.plan``) -> ``engine_standin.py`` under the engine's own rendered config, its
  backend switched to Python and ``standin_engine``/``standin_scale`` added -- names, dtypes, shapes, batching
  and the KIND_GPU instance group stay as rendered;
* ``package://`` files (RNNoise, Silero VAD, the MiniLM tokenizer) from the installed packages, checked by digest;
* the two NeMo export side files, which only exist next to a real export: ``tokens.txt`` (Parakeet's 1024
  SentencePiece pieces + blank -- here 1024 word pieces of the MiniLM vocabulary) and ``tokens.json`` (FastPitch's
  symbol table: padding, space, punctuation, ARPAbet with stress, letters; an empty lexicon, so words are spelled).

Everything else -- every Python model, every config, ``voice_pipeline``'s ``llm_endpoint_pool`` -- is the
renderer's. ``llm_pool(out)`` is the LLM pool's server: the gpu ``llm_chat`` with a stand-in for TensorRT-LLM's LLM
API over a tiny random-weight Llama (trtllm_torch/), because TensorRT-LLM cannot run where this repository is tested;
``llm_pair_pool`` both Llama 8B variants at full size, for the memory plan's proof.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from model_repo import catalog, render
from model_repo.artifacts.sources import package_file
from platform_spec.llm_memory import PoolMemoryPlan
from tests.gpu_standins.checks import LLM_PAIR

HERE = Path(__file__).resolve().parent
STANDIN = HERE / "engine_standin.py"
ARPABET = [
    "AA",
    "AE",
    "AH",
    "AO",
    "AW",
    "AY",
    "B",
    "CH",
    "D",
    "DH",
    "EH",
    "ER",
    "EY",
    "F",
    "G",
    "HH",
    "IH",
    "IY",
    "JH",
    "K",
    "L",
    "M",
    "N",
    "NG",
    "OW",
    "OY",
    "P",
    "R",
    "S",
    "SH",
    "T",
    "TH",
    "UH",
    "UW",
    "V",
    "W",
    "Y",
    "Z",
    "ZH",
]
VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}


def _fastpitch_symbols() -> dict:
    phones = [f"{p}{s}" for p in ARPABET for s in (("0", "1", "2") if p in VOWELS else ("",))]
    symbols = ["<pad>", " ", *list("!'(),-.:;?"), *phones, *"abcdefghijklmnopqrstuvwxyz"]
    return {"symbols": symbols, "pad": "<pad>", "space": " ", "pad_with_space": True, "lexicon": {}}


def _asr_pieces(tokenizer_json: Path) -> str:
    vocab = json.loads(tokenizer_json.read_text())["model"]["vocab"]
    words = [w for w in vocab if w.isalpha() and w.isascii()][:1024]
    return "".join(f"\u2581{w} {i}\n" for i, w in enumerate(words)) + f"<blk> {len(words)}\n"


def speech_pool(out: Path, *, on_gpu: bool) -> Path:
    """The speech pool's gpu repository with engine stand-ins: full-size on a GPU; on a machine without one, small
    and their instances moved to the CPU (the only change to the rendered configs). Plus ``bls_probe``."""
    scale = "full" if on_gpu else "tiny"
    rendered = render.render_repository(catalog.select({}), "gpu", out)
    manifest = json.loads((out / render.MANIFEST).read_text())
    speech = {s.name for s in catalog.select({}) if s.pool == "speech"}
    for model in manifest["models"]:
        model_dir = out / model["name"]
        if model["role"] == "llm" or (model["public"] and model["name"] not in speech):
            shutil.rmtree(model_dir)
            continue
        for artifact in model["artifacts"]:
            target = model_dir / artifact["path"]
            if artifact["kind"] == "tensorrt-engine":
                _standin_engine(model_dir, scale, on_gpu)
            elif artifact["source"].startswith("package://"):
                shutil.copyfile(package_file(model["name"], artifact["source"], artifact.get("sha256")), target)
    tokenizer = out / "embed" / "1" / "tokenizer.json"
    (out / "asr" / "1" / "tokens.txt").write_text(_asr_pieces(tokenizer), encoding="utf-8")
    (out / "tts" / "1" / "tokens.json").write_text(json.dumps(_fastpitch_symbols()), encoding="utf-8")
    shutil.copytree(HERE / "bls_probe", out / "bls_probe")
    shutil.copytree(render.PYTHON_MODELS_DIR / render.COMMON_DIR, out / "bls_probe" / "1" / render.COMMON_DIR)
    return rendered.out


def _standin_engine(model_dir: Path, scale: str, on_gpu: bool) -> None:
    config = text_format.Parse((model_dir / "config.pbtxt").read_text(), mc.ModelConfig())
    config.platform = ""
    config.backend = "python"
    config.default_model_filename = ""
    if not on_gpu:
        for group in config.instance_group:
            group.kind = mc.ModelInstanceGroup.KIND_CPU
            del group.gpus[:]
    config.parameters["standin_engine"].string_value = config.name
    config.parameters["standin_scale"].string_value = scale
    # The optimization profile the engine would be built with: the stand-in refuses shapes outside it, as TensorRT.
    (engine,) = [e for m in catalog.CATALOG.values() for e in m.engines if e.name == config.name]
    config.parameters["standin_profile"].string_value = json.dumps({k: list(v) for k, v in engine.profile.items()})
    (model_dir / "config.pbtxt").write_text(text_format.MessageToString(config))
    shutil.copyfile(STANDIN, model_dir / "1" / "model.py")


TINY_LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
              "vocab_size": 512, "rope_theta": 500000.0, "rms_norm_eps": 1e-05}  # fmt: skip


def llm_pool(out: Path, *, on_gpu: bool) -> Path:
    """The LLM pool's server for the voice turn: the gpu ``llm_chat`` (what voice_pipeline calls over gRPC), its
    serving code unchanged, TensorRT-LLM's LLM API played by the generating stand-in (trtllm_torch/) over a *tiny*
    Llama: the voice benchmarks measure the speech pool, and a tiny LLM keeps the LLM's share of a turn small and the
    repository small enough to carry. Its instance on the GPU where there is one."""
    return _llm_models(out, ("llm_chat",), "h200", on_gpu=on_gpu, full_size=False)[0]


def llm_pair_pool(out: Path, gpu_sku: str, *, on_gpu: bool) -> tuple[Path, PoolMemoryPlan]:
    """The LLM pool with both Llama 8B variants on one GPU as the stack places them: the real gpu repository of
    ``llm_chat`` and ``llm_support`` with the KV budgets the pool's memory plan derives for ``gpu_sku``
    (infra.stack_plan), each model's checkpoint files (Llama-3.1-8B's config.json, FP8 as the catalog builds it, the
    build's serving options) and, beside its unchanged serving code, the generating LLM API stand-in
    (trtllm_torch/). On a machine without a GPU: a tiny Llama and CPU instances (the only change to the configs)."""
    return _llm_models(out, LLM_PAIR, gpu_sku, on_gpu=on_gpu, full_size=on_gpu)


def _llm_models(
    out: Path, names: tuple[str, ...], gpu_sku: str, *, on_gpu: bool, full_size: bool
) -> tuple[Path, PoolMemoryPlan]:
    from infra.stack_plan import with_kv_budgets
    from platform_spec.llm_memory import plan_pool
    from tests.gpu_standins.llama_checkpoint import CHAT_TEMPLATE, LLAMA_3_1_8B, build_options, write_checkpoint

    specs = [catalog.CATALOG[name] for name in names]
    plan = plan_pool("llm", gpu_sku, [
        (m.name, m.precision_in_use, int(m.target("gpu").parameters["max_seq_len"]),
         int(m.target("gpu").parameters["kv_cache_max_tokens"]))
        for m in specs
    ])  # fmt: skip
    if not plan.fits:
        raise ValueError(plan.describe())
    render.render_repository(with_kv_budgets(specs, [plan]), "gpu", out)
    for seed, spec in enumerate(specs):
        model_dir = out / spec.name
        if not on_gpu:
            config = text_format.Parse((model_dir / "config.pbtxt").read_text(), mc.ModelConfig())
            for group in config.instance_group:
                group.kind = mc.ModelInstanceGroup.KIND_CPU
                del group.gpus[:]
            (model_dir / "config.pbtxt").write_text(text_format.MessageToString(config))
        # The stub imports from the version directory (it does not read PYTHONPATH).
        shutil.copytree(HERE / "trtllm_torch" / "tensorrt_llm", model_dir / "1" / "tensorrt_llm",
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        architecture = dict(LLAMA_3_1_8B if full_size else TINY_LLAMA, standin_seed=seed)
        write_checkpoint(model_dir / "1" / "checkpoint", CHAT_TEMPLATE, build_options(spec, gpu_sku),
                         architecture=architecture, fp8=spec.precision_in_use == "fp8")  # fmt: skip
    (out / "memory_plan.json").write_text(json.dumps(plan.to_output(), indent=2))
    return out, plan


def main(argv: list[str] | None = None) -> int:
    """Write ``<out>/speech`` and ``<out>/llm`` (the two pools' repositories) and ``<out>/speech.npy`` (a spoken
    question mixed with pink noise, 16 kHz float32), to carry to a GPU machine that has no espeak-ng or renderer."""
    import argparse

    import numpy as np

    from local.speech_sample import speech_sample

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--cpu", action="store_true", help="small stand-ins on CPU instances (default: GPU)")
    parser.add_argument("--llm-pair-gpu", default="h200", help="GPU SKU the LLM pair's memory plan is made for")
    args = parser.parse_args(argv)
    llm_pair_pool(args.out / "llm_pair", args.llm_pair_gpu, on_gpu=not args.cpu)
    speech_pool(args.out / "speech", on_gpu=not args.cpu)
    llm_pool(args.out / "llm", on_gpu=not args.cpu)
    sample = speech_sample("Hello, I cannot hear the other person during my calls. How do I fix the audio?",
                           lead_silence_s=1.0, tail_silence_s=0.6, peak=None, pink_noise_volume=0.2)  # fmt: skip
    np.save(args.out / "speech.npy", sample.noisy)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
