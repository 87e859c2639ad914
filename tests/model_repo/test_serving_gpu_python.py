"""The gpu target's Python pre/post-processing, tested here without a GPU or TensorRT.

* ASR features: the numpy log-mel equals a PyTorch re-statement of NeMo's ``FilterbankFeatures`` (eval
  mode) and its mel filters equal transformers' Slaney filterbank;
* TDT greedy decoding follows NeMo's rules on a scripted decoder;
* the FastPitch text front end (lexicon, letter fallback, numbers, punctuation);
* ``gpu/embed`` really runs in Triton around an engine stand-in -- a Python model with the exact tensor
  interface of the ``embed_encoder`` TensorRT plan, computing the same ONNX graph -- and returns the
  same vectors as the cpu model; ``gpu/llm`` fails to load with a clear error where TensorRT-LLM is absent.

Not run here: the TensorRT engines themselves and TensorRT-LLM (no GPU, no TensorRT on these machines).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from model_repo import catalog, render
from model_repo.local_server import TritonServer
from tests.model_repo.conftest import gpu_model_on_cpu

PYTHON_MODELS = Path(__file__).resolve().parents[2] / "model_repo" / "python_models"


def _module(relative: str):
    """Import a Python-backend source file the way the backend does (its directory and _common importable)."""
    path = PYTHON_MODELS / relative
    for directory in (str(PYTHON_MODELS), str(path.parent)):
        if directory not in sys.path:
            sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(f"gpu_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


features = _module("gpu/asr/features.py")
tdt = _module("gpu/asr/tdt.py")
text_tokens = _module("gpu/tts/text_tokens.py")


# --- ASR features -----------------------------------------------------------------------------------


def _nemo_reference(audio: np.ndarray) -> np.ndarray:
    """NeMo FilterbankFeatures.forward for Parakeet's preprocessor config, restated in PyTorch (no dither)."""
    import torch
    from transformers.audio_utils import mel_filter_bank

    x = torch.from_numpy(audio.astype(np.float64))[None]
    x = torch.cat((x[:, :1], x[:, 1:] - 0.97 * x[:, :-1]), dim=1)
    window = torch.hann_window(400, periodic=False, dtype=torch.float64)
    spec = torch.stft(x, n_fft=512, hop_length=160, win_length=400, center=True, pad_mode="constant",
                      window=window, return_complex=True)  # fmt: skip
    power = spec.abs() ** 2
    fb = torch.from_numpy(mel_filter_bank(257, 128, 0.0, 8000.0, 16000, norm="slaney", mel_scale="slaney")).T
    mel = torch.log(torch.matmul(fb, power) + 2**-24)[0]
    seq_len = audio.shape[0] // 160 + 1
    mean = mel[:, :seq_len].mean(dim=1, keepdim=True)
    std = torch.sqrt(((mel[:, :seq_len] - mean) ** 2).sum(dim=1, keepdim=True) / (seq_len - 1)) + 1e-5
    return ((mel - mean) / std).numpy()


def test_mel_filters_are_slaney_as_transformers_computes_them():
    from transformers.audio_utils import mel_filter_bank

    want = mel_filter_bank(257, 128, 0.0, 8000.0, 16000, norm="slaney", mel_scale="slaney").T
    np.testing.assert_allclose(features.mel_filterbank(), want, rtol=1e-4, atol=1e-7)


def test_log_mel_matches_nemo_preprocessing(speech_sample):
    audio = speech_sample.noisy[: 3 * 16_000 + 123]
    got = features.log_mel(audio)
    want = _nemo_reference(audio)
    assert got.shape == want.shape == (128, features.frames_for(len(audio)))
    np.testing.assert_allclose(got, want, atol=2e-3)


def test_batched_features_are_padded_per_utterance():
    short, long = np.random.default_rng(0).standard_normal((2, 16_000)).astype(np.float32) * 0.1
    batch, lengths = features.batch_features([short[:8_000], long])
    assert batch.shape == (2, 128, 101) and lengths.tolist() == [51, 101]
    np.testing.assert_array_equal(batch[0, :, 51:], 0)
    np.testing.assert_allclose(batch[0, :, :51], features.log_mel(short[:8_000]))


# --- TDT decoding -------------------------------------------------------------------------------------


def test_greedy_tdt_emits_tokens_and_skips_by_predicted_durations():
    blank, durations = 3, [0, 1, 2, 3, 4]
    # (frame, visit) -> (token, duration index), as a decoder-joint network would score them.
    script = {
        (0, 0): (0, 0),  # token 0, stay on this frame
        (0, 1): (blank, 1),  # blank, advance 1
        (1, 0): (blank, 2),  # blank, skip frame 2
        (3, 0): (1, 1),  # token 1, advance 1
        (4, 0): (2, 0),  # token 2, stay
        (4, 1): (blank, 0),  # blank with duration 0: forced to advance 1
        (5, 0): (blank, 4),  # jump to frame 9
        (9, 0): (blank, 1),
    }
    visits: list[tuple[int, int]] = []

    def scripted(frame, previous):
        t = int(frame[0])
        visit = sum(1 for seen, _ in visits if seen == t)
        visits.append((t, previous))
        token, dur = script[(t, visit)]
        logits, dlogits = np.zeros(blank + 1), np.zeros(len(durations))
        logits[token], dlogits[dur] = 1, 1
        return logits, dlogits

    encoded = np.tile(np.arange(10, dtype=np.float32), (4, 1))  # row 0 tells the fake decoder the frame
    ids = tdt.greedy_tdt([encoded], [10], _batched(scripted), _zeros(1), blank, durations)
    assert ids == [[0, 1, 2]]
    assert [t for t, _ in visits] == [0, 0, 1, 3, 4, 4, 5, 9]
    # The prediction network sees blank first, then always the last emitted token.
    assert [p for _, p in visits] == [blank, 0, 0, 0, 1, 2, 2, 2]


def _zeros(batch: int):
    return np.zeros((2, batch, 1)), np.zeros((2, batch, 1))


def _batched(per_utterance, calls: list | None = None):
    """A decoder-joint step over a batch, from a per-utterance scoring function; counts its calls in ``calls``;
    a non-blank token advances that utterance's state by one."""

    def step(frames, previous, state):
        if calls is not None:
            calls.append(len(previous))
        scored = [per_utterance(frame, int(p)) for frame, p in zip(frames, previous, strict=True)]
        return np.stack([s[0] for s in scored]), np.stack([s[1] for s in scored]), (state[0] + 1, state[1])

    return step


def test_greedy_tdt_decodes_a_batch_as_each_alone_in_as_many_calls_as_the_longest():
    blank, durations = 5, [0, 1, 2]

    def score(frame, previous):  # frame value -> token (value % 6, blank when 5), advance 1 or 2
        value = int(frame[0])
        logits, dlogits = np.zeros(blank + 1), np.zeros(len(durations))
        logits[value % 6] = 1
        dlogits[1 + value % 2] = 1
        return logits, dlogits

    utterances = [np.arange(n, dtype=np.float32)[None, :] * k for n, k in ((12, 1), (5, 3), (30, 7))]
    lengths = [u.shape[1] for u in utterances]
    alone, alone_calls = [], []
    for u, n in zip(utterances, lengths, strict=True):
        calls: list[int] = []
        alone += tdt.greedy_tdt([u], [n], _batched(score, calls), _zeros(1), blank, durations)
        alone_calls.append(len(calls))
    calls = []
    together = tdt.greedy_tdt(utterances, lengths, _batched(score, calls), _zeros(3), blank, durations)
    assert together == alone and all(together)
    assert len(calls) == max(alone_calls) < sum(alone_calls)
    assert calls[0] == 3 and calls[-1] == 1, "finished utterances leave the batch"


def test_greedy_tdt_caps_symbols_per_frame():
    def score(frame, previous):  # always "token 0, duration 0": would loop forever without the cap
        return np.array([1.0, 0.0]), np.array([1.0, 0.0])

    ids = tdt.greedy_tdt([np.zeros((1, 3))], [3], _batched(score), _zeros(1), blank_id=1, durations=[0, 1],
                         max_symbols=4)  # fmt: skip
    assert ids == [[0] * 12]


def test_engine_profiles_cover_exactly_what_the_public_models_accept():
    """A request inside the public model's limits never meets a TensorRT shape error, and one outside them gets
    the model's own error: the catalog renders both from one constant each."""
    asr, tts, embed = (catalog.CATALOG[n] for n in ("asr", "tts", "embed"))
    engines = {e.name: e for m in (asr, tts, embed) for e in m.engines}
    params = asr.target("gpu").parameters
    (frames,) = engines["asr_encoder"].profile["audio_signal"]
    shortest, longest = int(params["min_samples"]), int(float(params["max_audio_s"]) * 16_000)
    assert (frames[0], frames[2]) == (features.frames_for(shortest), features.frames_for(longest))
    tts_params = tts.target("gpu").parameters
    assert engines["tts_fastpitch"].profile["text"][0][2] == int(tts_params["max_text_tokens"])
    spec = engines["tts_hifigan"].profile["spec"][0]
    assert (spec[0], spec[2]) == (int(tts_params["vocoder_min_frames"]), int(tts_params["vocoder_max_frames"]))
    assert engines["embed_encoder"].profile["input_ids"][0][2] == int(embed.target("gpu").parameters["max_tokens"])


def test_a_long_sentence_goes_to_fastpitch_in_parts_cut_at_word_breaks():
    space = 1
    ids = [5, 6, space, 7, 8, 9, space, 5, 5, 5, 5, 5, 5]
    parts = text_tokens.split_tokens(ids, 5, space)
    assert parts == [[5, 6, space], [7, 8, 9, space], [5, 5, 5, 5, 5], [5]]
    assert all(len(p) <= 5 for p in parts) and sum(parts, []) == ids
    assert text_tokens.split_tokens([], 5, space) == []


def test_detokenize_joins_sentencepiece_pieces():
    assert tdt.detokenize([0, 1, 2], ["\u2581hel", "lo", "\u2581there"]) == "hello there"


# --- TTS text front end -----------------------------------------------------------------------------------


TABLE = {
    "symbols": ["<pad>", " ", ".", ",", "?", "HH", "AH0", "L", "OW1", "W", "ER1", "D", *"abcdefghijklmnopqrstuvwxyz"],
    "space": " ",
    "pad_with_space": True,
    "lexicon": {"hello": ["HH", "AH0", "L", "OW1"], "world": ["W", "ER1", "L", "D"]},
}


def test_tts_tokens_use_the_lexicon_fall_back_to_letters_and_keep_punctuation():
    tok = text_tokens.PhonemeTokenizer(TABLE)
    assert tok.symbols("Hello, world!") == [" ", "HH", "AH0", "L", "OW1", ",", " ", "W", "ER1", "L", "D", "!", " "]
    ids = tok.encode("Hello, world!")
    assert "!" not in TABLE["symbols"] and len(ids) == 12, "symbols the table lacks are dropped"
    assert tok.symbols("zyx") == [" ", "z", "y", "x", " "]


@pytest.mark.parametrize(
    ("n", "words"),
    [(0, "zero"), (13, "thirteen"), (40, "forty"), (105, "one hundred five"), (2024, "two thousand twenty four"),
     (3_000_001, "three million one")],
)  # fmt: skip
def test_numbers_are_read_as_words(n, words):
    assert text_tokens.number_words(n) == words


# --- gpu/embed around an engine stand-in, in a real Triton --------------------------------------------------

ENGINE_STAND_IN = '''
"""Stand-in for the embed_encoder TensorRT plan: same tensors, same graph, run by ONNX Runtime."""
from pathlib import Path
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def initialize(self, args):
        model = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        self.session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])

    def execute(self, requests):
        responses = []
        for request in requests:
            feeds = {n: pb_utils.get_input_tensor_by_name(request, n).as_numpy()
                     for n in ("input_ids", "attention_mask", "token_type_ids")}
            (hidden,) = self.session.run(["last_hidden_state"], feeds)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("last_hidden_state", hidden)]))
        return responses
'''


@pytest.fixture(scope="module")
def gpu_embed_server(tmp_path_factory, cpu_repository):
    """The gpu-target ``embed`` (config and code as rendered for gpu) plus an ``embed_encoder`` stand-in."""
    repo = tmp_path_factory.mktemp("gpu-embed")
    spec = catalog.CATALOG["embed"]
    (engine,) = spec.engines
    public = render.model_config(spec, "gpu")
    public.instance_group[0].kind = mc.ModelInstanceGroup.KIND_CPU
    stand_in = render.engine_config(engine, spec)
    stand_in.ClearField("platform")
    stand_in.ClearField("default_model_filename")
    stand_in.backend = "python"
    stand_in.instance_group[0].kind = mc.ModelInstanceGroup.KIND_CPU
    cpu_version = cpu_repository.out / "embed" / "1"
    for config, files in ((public, {"tokenizer.json"}), (stand_in, {"model.onnx"})):
        version = repo / config.name / "1"
        version.mkdir(parents=True)
        (repo / config.name / "config.pbtxt").write_text(text_format.MessageToString(config))
        for name in files:
            shutil.copyfile(cpu_version / name, version / name)
    shutil.copytree(PYTHON_MODELS / "gpu" / "embed", repo / "embed" / "1", dirs_exist_ok=True)
    shutil.copytree(PYTHON_MODELS / "_common", repo / "embed" / "1" / "_common")
    (repo / engine.name / "1" / "model.py").write_text(ENGINE_STAND_IN)
    # The gpu LLM model, to prove it refuses to load with a clear error where TensorRT-LLM is absent.
    llm_version = gpu_model_on_cpu(repo, catalog.CATALOG["llm_chat"])
    (llm_version / "checkpoint").mkdir()
    (llm_version / "checkpoint" / "config.json").write_text("{}")

    server = TritonServer(repo, model_control_mode="explicit", load_models=["embed", engine.name],
                          work_dir=tmp_path_factory.mktemp("gpu-embed-server"), startup_timeout_s=120)  # fmt: skip
    with server:
        yield server


def test_gpu_embed_matches_the_cpu_model_through_its_engine(gpu_embed_server, serving):
    import tritonclient.http as httpclient

    texts = ["my calls keep dropping on wifi", "refund for a broken headset", "reset my password please"]
    values = {"TEXT": np.array([[t.encode()] for t in texts], dtype=np.object_)}
    gpu = httpclient.InferenceServerClient(gpu_embed_server.endpoints.http)
    got = gpu.infer("embed", serving.http_inputs(values)).as_numpy("EMBEDDING")
    want = serving.infer_http("embed", values).as_numpy("EMBEDDING")
    assert got.shape == (3, catalog.EMBEDDING_DIM)
    np.testing.assert_allclose(got, want, atol=1e-5)
    with pytest.raises(Exception, match=r"TEXT item 0 is \d+ tokens long"):
        gpu.infer("embed", serving.http_inputs({"TEXT": np.array([[("word " * 400).encode()]], dtype=np.object_)}))


def test_gpu_llm_without_tensorrt_llm_fails_to_load_with_the_fix(gpu_embed_server):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(gpu_embed_server.endpoints.http)
    with pytest.raises(Exception, match=r"tensorrt_llm is not importable .* Triton TensorRT-LLM image"):
        client.load_model("llm_chat")
    assert client.is_server_live() and client.is_model_ready("embed")
    assert json.loads(json.dumps(client.get_model_repository_index()))  # the server still answers
