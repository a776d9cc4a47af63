"""Batch transcription of call archives: a pure per-file job plus a resumable runner."""
