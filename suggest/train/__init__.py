"""Training: conversations (JSONL v1) in, a self-describing model directory out.

Reads conversation files only (never ``voice.store``); see ``suggest.train.pipeline.train``.
"""
