"""The live server's torch ASR backend (``voice serve --asr-backend torch``) on CPU: the runtime
the server builds streams a real SpokenWOZ leg through the same processor as the default path.

On a GPU the same runtime batches every call's decodes with CUDA-graph decode steps
(docs/results/gpu.md); on CPU it runs the same code without capture, slowly, so the leg is short.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from asr import WhisperEngine
from asr.torch_backend import TorchWhisperDecoder
from asr.wer import word_errors
from tests.voice.spokenwoz import spokenwoz_leg
from voice.audio import resample
from voice.config import ServerConfig, load_config
from voice.errors import ConfigError
from voice.frames import CallStartedFrame, TranscriptFinalFrame
from voice.live.asr_runtime import AsrRuntime
from voice.live.replay import FrameRecorder, ReplayClock, ReplayMode, replay_call
from voice.processor import Pipeline
from voice.processors.asr import StreamingAsrProcessor
from voice.vad import detect_speech

CALL = "SNG0480"
SECONDS = 20.0
WER_MARGIN = 0.10  # finals turn by turn against one offline pass, on ~30 words


@pytest.fixture(scope="module")
def runtime() -> Iterator[AsrRuntime]:
    config = ServerConfig(asr_backend="torch", device="cpu", asr_workers=1, asr_max_batch=8, sip_port=-1)
    runtime = AsrRuntime.load(config)
    assert runtime.engine.config.max_rows == 8 and runtime.engine.final_options.beam_size == 5
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def leg(shared_data: Path) -> tuple[np.ndarray, str]:
    return spokenwoz_leg(shared_data, CALL, SECONDS)


@pytest.mark.model
def test_the_torch_runtime_streams_a_real_leg(runtime: AsrRuntime, leg: tuple[np.ndarray, str]) -> None:
    assert isinstance(runtime.engine, TorchWhisperDecoder)
    pcm, reference = leg
    clock = ReplayClock(ReplayMode.UNAWARE)
    recorder = FrameRecorder(clock)
    asr = runtime.processor_for(CallStartedFrame(call_id="torch-1", legs={"agent": "agent"}))
    assert isinstance(asr, StreamingAsrProcessor)  # the server's own per-call processor
    pipeline = Pipeline([asr, recorder])

    async def run() -> None:
        await replay_call(
            pipeline,
            {"agent": pcm},
            8000,
            call_id="torch-1",
            roles={"agent": "agent"},
            mode=ReplayMode.UNAWARE,
            clock=clock,
            busy=lambda: asr.busy,
            drained=asr.drained,
        )
        await pipeline.close()

    asyncio.run(run())
    finals = [e.frame for e in recorder.emitted if isinstance(e.frame, TranscriptFinalFrame)]
    assert finals and all(f.role == "agent" and f.words for f in finals)
    audio = resample(pcm.astype(np.float32) / 32768.0, 8000, 16000)
    regions = [(r.start, r.end) for r in detect_speech(audio)]
    offline = WhisperEngine.load("tiny.en").transcribe(audio, speech=regions).text
    streamed = " ".join(f.text for f in finals)
    assert word_errors(reference, streamed).wer <= word_errors(reference, offline).wer + WER_MARGIN


@pytest.mark.unit
def test_an_unknown_backend_is_refused_before_any_model_loads() -> None:
    config = load_config(None, {"asr_backend": "onnx"}, environ={})
    with pytest.raises(ConfigError, match="faster-whisper, torch"):
        AsrRuntime.load(config)
