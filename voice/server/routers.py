"""Mounts the console's routers on the app (one call from ``create_app``)."""

from __future__ import annotations

from fastapi import FastAPI


def include_console_routers(app: FastAPI) -> None:
    """Pages, static files, sign-in, QA, uploads, feedback, erasure and the supervisor socket; and
    422 answers that encode whatever the request held (``voice.server.validation``)."""
    from voice.server import auth, feedback_api, qa, retention_api, supervisor, uploads_api, web
    from voice.server.validation import install_validation_handler

    install_validation_handler(app)
    for module in (auth, feedback_api, qa, retention_api, uploads_api, supervisor, web):
        app.include_router(module.create_router())
    web.mount_static(app)
