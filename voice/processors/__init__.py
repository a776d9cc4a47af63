"""Processors that adapt the engines (ASR, speakers, NLU, suggestions) to frames; the only voice
modules besides voice.batch that import engines."""
