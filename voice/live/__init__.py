"""The live call path: per-call sessions, the decode scheduler and process-wide services."""
