"""The one voice-turn client (``local.voice_turn``) and the one speech-sample maker (``local.speech_sample``)
on their own: a scripted pipeline on a real tritonserver, and espeak-ng speech with known padding and noise."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from google.protobuf import text_format

from local.speech_sample import speech_sample
from local.voice_turn import pipeline_turn
from model_repo import catalog

SCRIPTED_PIPELINE = textwrap.dedent(
    """
    # Plays the voice pipeline's streaming protocol from a script, so the turn client is tested on its
    # own (the real pipeline is exercised end to end by the serving tests).
    import numpy as np
    import triton_python_backend_utils as pb_utils

    def text(value):
        return np.array([value.encode()], dtype=np.object_)

    class TritonPythonModel:
        def execute(self, requests):
            for request in requests:
                sender = request.get_response_sender()
                audio = pb_utils.get_input_tensor_by_name(request, "AUDIO").as_numpy()
                sent = [
                    {"TRANSCRIPT": text(f"{audio.size} samples"), "PASSAGES": np.array([b"a", b"b"], dtype=np.object_)},
                    {"TEXT_OUTPUT": text("Hello ")},
                    {"TEXT_OUTPUT": text("there.")},
                    {"AUDIO": np.zeros(8000, np.float32)},
                    {"AUDIO": np.zeros(4000, np.float32)},
                ]
                for outputs in sent:
                    tensors = [pb_utils.Tensor(k, v) for k, v in outputs.items()]
                    sender.send(pb_utils.InferenceResponse(output_tensors=tensors))
                sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            return None
    """
)


def test_speech_sample_is_padded_noisy_speech_at_16khz():
    sample = speech_sample("What are your opening hours on Saturday?", lead_silence_s=0.5, tail_silence_s=0.5,
                           white_noise=0.01)  # fmt: skip
    audio = sample.noisy
    seconds = audio.size / catalog.AUDIO_SAMPLE_RATE
    assert audio.dtype == np.float32 and 2.0 < seconds < 6.0 and sample.clean.size == audio.size
    assert 0.5 <= sample.speech_start_s < sample.speech_end_s <= seconds - 0.5
    rate = catalog.AUDIO_SAMPLE_RATE
    quiet, spoken = audio[: rate // 4], audio[rate : 2 * rate]
    assert 0 < np.sqrt(np.mean(quiet**2)) < np.sqrt(np.mean(spoken**2)) / 3  # noise floor, then speech


@pytest.mark.triton
def test_pipeline_client_streams_a_turn_through_the_pipeline_protocol(tmp_path):
    from local import triton_calls
    from model_repo import render
    from model_repo.local_server import TritonServer

    repo = tmp_path / "repo"
    (repo / "voice_pipeline" / "1").mkdir(parents=True)
    config = render.model_config({s.name: s for s in catalog.select({})}["voice_pipeline"], "cpu")
    assert config.name == "voice_pipeline" and config.model_transaction_policy.decoupled
    (repo / "voice_pipeline" / "config.pbtxt").write_text(text_format.MessageToString(config))
    (repo / "voice_pipeline" / "1" / "model.py").write_text(SCRIPTED_PIPELINE)
    with TritonServer(repo) as server:
        client = triton_calls.grpc_client(server.endpoints.grpc)
        try:
            turn = pipeline_turn(client, "voice_pipeline", np.zeros(16000, np.float32), max_tokens=8, timeout_s=30)
        finally:
            client.close()
    assert turn.transcript == "16000 samples" and turn.passages == ["a", "b"]
    assert turn.answer == "Hello there."
    assert turn.audio_seconds == pytest.approx(0.75)
    assert 0 < turn.transcript_ms <= turn.first_text_ms <= turn.first_audio_ms <= turn.total_ms
