"""422 answers that always encode: a refused value is echoed back in a JSON-safe form.

FastAPI's own 422 echoes each refused ``input``. A JSON body with ``NaN``, ``Infinity`` or
``1e400`` (Python parses it as infinity) then made the 422 itself fail to encode (Starlette's
JSON refuses non-finite floats), and the client got a 500 instead of the reason. So did a lone
UTF-16 surrogate (``"\\ud800"`` in a JSON string): pydantic refuses it, and UTF-8 cannot encode it.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.responses import JSONResponse


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float written as a string (``"nan"``, ``"inf"``, ``"-inf"``)
    and every string made encodable (a lone surrogate written as ``\\ud800``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {json_safe(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


async def request_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 (``{"detail": [errors]}``), with the echoed inputs made JSON-safe."""
    if not isinstance(exc, RequestValidationError):  # registered for that class only
        raise exc
    return JSONResponse(status_code=422, content={"detail": json_safe(jsonable_encoder(exc.errors()))})


def install_validation_handler(app: FastAPI) -> None:
    """Answer every request validation error through :func:`request_validation_error`."""
    app.add_exception_handler(RequestValidationError, request_validation_error)
