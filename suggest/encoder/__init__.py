"""Sentence embeddings for the engine: MiniLM exported to ONNX, run by onnxruntime.

``OnnxSentenceEncoder`` (serving) needs only onnxruntime, tokenizers and numpy;
``suggest.encoder.export`` (training) needs torch, transformers and onnx.
"""

from suggest.encoder.onnx_encoder import ENCODER_FILES, EncoderSpec, OnnxSentenceEncoder

__all__ = ["ENCODER_FILES", "EncoderSpec", "OnnxSentenceEncoder"]
