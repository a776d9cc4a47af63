"""The live server: FastAPI app, event hub, call registry, agent-facing event streams."""
