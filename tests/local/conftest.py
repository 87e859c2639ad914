"""Fixtures of the local-platform tests: one spoken sample, one real tritonserver on a few cheap models.

The server runs the dev stack's CPU repository restricted to VAD (Silero), the MiniLM embedder, the
retriever and the espeak-ng TTS (a streaming model), in explicit model-control mode so the tests can
swap serving configurations through Triton's repository API. Artifacts come from the content-addressed
cache the model-repository tests fill (``$MODEL_REPO_ARTIFACT_CACHE``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from local.platform_run import stack_models
from local.speech_sample import speak
from model_repo.local_server import TritonServer
from model_repo.render import render_repository

SERVED = ("vad", "embed", "retriever", "tts")


@pytest.fixture(scope="session")
def speech() -> np.ndarray:
    return speak()


@pytest.fixture(scope="session")
def dev_specs():
    return {s.name: s for s in stack_models("dev", SERVED)}


@pytest.fixture(scope="session")
def local_triton(dev_specs, tmp_path_factory) -> Iterator[TritonServer]:
    work = tmp_path_factory.mktemp("local-triton")
    rendered = render_repository(list(dev_specs.values()), "cpu", work / "repository")
    server = TritonServer(
        rendered.out,
        model_control_mode="explicit",
        load_models=SERVED,
        work_dir=work / "server",
        startup_timeout_s=300,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
