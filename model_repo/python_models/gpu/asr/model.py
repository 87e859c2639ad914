"""Speech recognition on the gpu target: Parakeet-TDT as two TensorRT engines, pre/post in Python.

Same public interface as the cpu model (``AUDIO`` + ``SAMPLE_RATE`` -> ``TRANSCRIPT``). A dynamic batch is
turned into NeMo log-mel features (``features.py``), encoded in one BLS call to ``encoder_model``
(``asr_encoder``: FastConformer, batched by Triton), then the utterances are decoded greedily side by
side (``tdt.py``) by stepping ``decoder_model`` (``asr_decoder_joint``: prediction network + joint, the
current frame of every utterance per call, LSTM states carried between calls). Files next to this one
(synced from the model store with the engines): ``tokens.txt`` (``<piece> <id>`` per line, blank last,
as NeMo exports it).
Parameters: ``encoder_model``, ``decoder_model``, ``tdt_durations`` (default ``0,1,2,3,4``),
``decoder_state_size`` (default 640), ``decoder_layers`` (default 2), ``max_symbols_per_step``,
``min_samples`` and ``max_audio_s`` (the encoder engine's profile covers exactly this range; outside it a
request gets a clear error here instead of a TensorRT shape error).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils
from _common import bls, triton
from _common.artifact import required
from features import batch_features
from tdt import detokenize, greedy_tdt

MIN_SAMPLES = 1_600  # 100 ms, unless the config says (the catalog renders the encoder profile's own limit)
# What this model loads from its version directory: config parameter -> default name (the renderer
# checks each one is written or listed in repository.json for the deployment to place).
REQUIRED_FILES = {"tokens_file": "tokens.txt"}


def load_vocabulary(path: Path) -> list[str]:
    pieces: dict[int, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            piece, index = line.rsplit(" ", 1)
            pieces[int(index)] = piece
    return [pieces[i] for i in range(len(pieces))]


class TritonPythonModel:
    def initialize(self, args):
        self.config = triton.parse_config(args)
        params = triton.parameters(self.config)
        version_dir = Path(args["model_repository"]) / args["model_version"]
        tokens = required(version_dir, params, REQUIRED_FILES, "tokens_file")
        self.vocab = load_vocabulary(tokens)
        self.blank_id = len(self.vocab) - 1 if self.vocab[-1] == "<blk>" else len(self.vocab)
        self.encoder_model = params["encoder_model"]
        self.decoder_model = params["decoder_model"]
        self.durations = [int(d) for d in params.get("tdt_durations", "0,1,2,3,4").split(",")]
        self.state_shape = (int(params.get("decoder_layers", "2")), int(params.get("decoder_state_size", "640")))
        self.max_symbols = int(params.get("max_symbols_per_step", "10"))
        self.max_seconds = float(params.get("max_audio_s", triton.DEFAULT_MAX_AUDIO_SECONDS))
        self.min_samples = int(params.get("min_samples", MIN_SAMPLES))

    def execute(self, requests):
        return triton.execute_batch(requests, self._parse, self._compute)

    def _parse(self, request):
        return triton.audio_rows(request, self.config, min_samples=self.min_samples, max_seconds=self.max_seconds)

    def _compute(self, items):
        utterances = [row for audio in items for row in audio]
        features, lengths = batch_features(utterances)
        encoded = bls.call(
            self.encoder_model,
            {"audio_signal": features, "length": lengths[:, None]},
            ["outputs", "encoded_lengths"],
        )
        frames = encoded["encoded_lengths"].reshape(-1)
        texts = self._decode(encoded["outputs"], [int(f) for f in frames])
        responses, at = [], 0
        for audio in items:
            rows = np.array([[t.encode()] for t in texts[at : at + len(audio)]], dtype=np.object_)
            at += len(audio)
            if not triton.batched(self.config):
                rows = rows[0]
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("TRANSCRIPT", rows)]))
        return responses

    def _decode(self, encoded: np.ndarray, lengths: list[int]) -> list[str]:
        layers, size = self.state_shape
        zeros = np.zeros((layers, len(lengths), size), dtype=np.float32)
        vocabulary = self.blank_id + 1  # token logits come first, then one logit per duration

        def step(frames, previous, state):
            out = bls.call(
                self.decoder_model,
                {
                    "encoder_outputs": frames[:, :, None].astype(np.float32),
                    "targets": previous[:, None],
                    "target_length": np.ones(len(previous), dtype=np.int32),
                    "input_states_1": np.ascontiguousarray(state[0]),
                    "input_states_2": np.ascontiguousarray(state[1]),
                },
                ["outputs", "output_states_1", "output_states_2"],
            )
            logits = out["outputs"].reshape(len(previous), -1)
            return logits[:, :vocabulary], logits[:, vocabulary:], (out["output_states_1"], out["output_states_2"])

        ids = greedy_tdt(encoded, lengths, step, (zeros, zeros), self.blank_id, self.durations, self.max_symbols)
        return [detokenize(utterance, self.vocab) for utterance in ids]
