"""``POST /webrtc/offer``: a softphone posts its SDP offer and gets aiortc's answer.

Request JSON: ``{"sdp": "...", "type": "offer", "tenant": "acme", "agent_id": "a42",
"role": "agent" | "customer" | "unknown", "codec": "opus" | "pcmu" | "pcma",
"context": {"customer_tier": 2}}`` (``context``: numeric call-start facts for the suggestion
model; a value that is not a finite number is a 422, like any other invalid field).
Response: ``{"sdp": "...", "type": "answer", "call_id": "webrtc-..."}``. Non-trickle ICE: the
answer carries all our candidates. 400 for an unusable offer, 503 when the call is refused.

Who may post: the server mounting the route passes ``authorize``, which checks the request's
credentials and says which tenant and agent the call belongs to (the live server: the signed-in
agent's own, voice/server/app.py), so a client cannot open a call on another agent's console.
Without it (tests, an embedding behind its own gate) the offer's ``tenant``/``agent_id`` stand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

from telephony.far_end import MAX_CONTEXT_MAGNITUDE
from telephony.settings import TelephonySettings
from telephony.webrtc.transport import WebRtcIngress, WebRtcOffer
from voice.errors import VoiceError
from voice.transport import CallHandler

MAX_SDP_CHARS = 100_000
_ID_PATTERN = r"^[A-Za-z0-9_.@:+-]+$"
FactName = Annotated[str, Field(min_length=1, max_length=128, pattern=_ID_PATTERN)]
FactValue = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_CONTEXT_MAGNITUDE, le=MAX_CONTEXT_MAGNITUDE)]
"""A call-start fact: a finite number a suggestion model's float32 features can hold (1e39 made
every score NaN), as the other ingresses keep (:func:`telephony.far_end.call_context`)."""


class OfferRequest(BaseModel):
    """The JSON body of ``POST /webrtc/offer``."""

    sdp: str = Field(max_length=MAX_SDP_CHARS)
    type: Literal["offer"] = "offer"
    tenant: str | None = Field(default=None, max_length=128, pattern=_ID_PATTERN)
    agent_id: str | None = Field(default=None, max_length=128, pattern=_ID_PATTERN)
    role: Literal["agent", "customer", "unknown"] = "unknown"
    codec: Literal["opus", "pcmu", "pcma"] | None = None
    context: dict[FactName, FactValue] = Field(default_factory=dict, max_length=64)


Authorize = Callable[[Request, str | None, str | None], Awaitable[tuple[str | None, str | None]]]
"""(request, offered tenant, offered agent id) -> the call's (tenant, agent id); raises
``HTTPException`` (401/403) for a caller that may not open such a call."""


class AnswerResponse(BaseModel):
    """The answer and the id the call will have in ``/api/calls``."""

    sdp: str
    type: Literal["answer"] = "answer"
    call_id: str


def create_router(
    handler: CallHandler,
    settings: TelephonySettings | None = None,
    ingress: WebRtcIngress | None = None,
    *,
    authorize: Authorize | None = None,
) -> APIRouter:
    """The ``POST /webrtc/offer`` route; open peer connections close with the app."""
    ingress = ingress or WebRtcIngress(handler, settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await ingress.aclose()

    router = APIRouter(lifespan=lifespan)

    @router.post("/webrtc/offer", response_model=AnswerResponse)
    async def webrtc_offer(request: OfferRequest, http: Request) -> AnswerResponse:
        tenant, agent_id = request.tenant, request.agent_id
        if authorize is not None:
            tenant, agent_id = await authorize(http, tenant, agent_id)
        offer = WebRtcOffer(
            sdp=request.sdp,
            tenant=tenant,
            agent_id=agent_id,
            role=request.role,
            codec=request.codec,
            context=dict(request.context),
        )
        try:
            call, answer = await ingress.accept(offer)
        except VoiceError as exc:
            raise HTTPException(status_code=503, detail=f"call refused: {exc.message}") from None
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=f"unusable offer: {exc}") from None
        return AnswerResponse(sdp=answer.sdp, call_id=call.started.call_id)

    return router
