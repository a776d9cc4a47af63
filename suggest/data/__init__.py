"""Conversation data: the versioned JSONL format, dataset importers and the fixed held-out split."""
