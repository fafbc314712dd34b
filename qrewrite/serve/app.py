"""``python -m qrewrite serve``: a FastAPI app over a rewriting backend, run by uvicorn.

  POST /v1/rewrite  {"question": "..."} or {"questions": [...]} -> {"rewrites": [...], "model": ..., "ms": ...}
  POST /v1/chat/completions, GET /v1/models    the OpenAI-compatible API (:mod:`qrewrite.serve.openai_api`)
  GET  /health      model name, its engine and decoding, and status (never needs the API key)
  GET  /            a small page to try it; /docs and /openapi.json: FastAPI's own

Concurrent requests are batched by :mod:`qrewrite.serve.batcher`. Validation and error shapes come from FastAPI and
pydantic; the handlers below only turn every error into ``{"message": ..., ...}`` JSON.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations, and the request model is
# built per app (its limits are settings), so it is a local name that string annotations could not resolve.

import asyncio
import ipaddress
import logging
import secrets
import signal
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, StringConstraints, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from qrewrite.data.records import question_problem
from qrewrite.serve.batcher import Batcher, QueueFull, ShuttingDown
from qrewrite.serve.engine import load_backend
from qrewrite.serve.openai_api import (
    ChatCompletion,
    ChatCompletionRequest,
    ModelCard,
    ModelList,
    UnsupportedRequest,
    completion,
    question_of,
)
from qrewrite.serve.options import API_KEY_ENV, ServeOptions, Settings

log = logging.getLogger("qrewrite.serve.app")
DRAIN_BYTES = 64 * 1024 * 1024  # the most of a refused body read and discarded before answering
DRAIN_S = 10.0                  # and for at most this long
PAGE = Path(__file__).with_name("page.html")


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("the question is empty or whitespace only")
    if (problem := question_problem(text, None)) is not None:  # a lone surrogate: no UTF-8 answer could hold it
        raise ValueError(problem[1])
    return text.strip()


def request_model(settings: Settings) -> type[BaseModel]:
    Question = Annotated[StrictStr, StringConstraints(max_length=settings.max_question_chars),
                         AfterValidator(_not_blank)]

    class RewriteRequest(BaseModel):
        """Give one question as ``question``, or several as ``questions``."""
        model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
            {"question": "What year no sorry which city hosted the 1996 games?"},
            {"questions": ["Who wrote um who painted the portrait?", "How many moons does, I mean rings, it have?"]},
        ]})
        question: Question | None = None
        questions: Annotated[list[Question], Field(min_length=1, max_length=settings.max_questions)] | None = None

        @model_validator(mode="after")
        def _exactly_one(self):
            if (self.question is None) == (self.questions is None):
                raise ValueError("give exactly one of 'question' (a string) or 'questions' (a list of strings)")
            return self

        def texts(self) -> list[str]:
            return [self.question] if self.question is not None else list(self.questions)

    return RewriteRequest


class RewriteResponse(BaseModel):
    rewrites: list[str] = Field(description="one rewrite per question, in the order asked")
    model: str
    ms: float = Field(description="server time for the request, milliseconds")


class Health(BaseModel):
    status: str
    model: str
    engine: str | None = Field(None, description="what decodes: transformers or ctranslate2; null for copy and rules")
    decoding: str | None = Field(None, description="how the model decodes (greedy, beam search, copy bonus); "
                                                   "null for copy and rules")
    lone_question: str | None = Field(None, description="how a lone question is rewritten: 'prompt lookup (float32)' "
                                                        "or '(bfloat16)', 'plain greedy (...)', 'batch of one'; "
                                                        "null for copy and rules")
    pending: int = Field(description="questions accepted and not yet answered")
    batches: int
    rewritten: int


class Error(BaseModel):
    message: str


def _field(error: dict) -> str:
    if error.get("type") == "json_invalid":
        return "body"
    parts = [str(p) for p in error.get("loc", ()) if p != "body"]
    return ".".join(parts) or "body"


def _message(error: dict) -> str:
    return error["msg"].removeprefix("Value error, ")


def _validation_message(errors: list[dict]) -> str:
    messages = []
    for e in errors:
        if e.get("type") == "json_invalid":
            messages.append(f"the request body is not valid JSON (character {e['loc'][-1]}: "
                            f"{e.get('ctx', {}).get('error', e['msg'])})")
        elif e.get("type") == "missing" and e.get("loc", ())[:1] == ("body",) and len(e["loc"]) == 1:
            messages.append("the request body is missing: send JSON {\"question\": \"...\"}")
        else:
            messages.append(f"{_field(e)}: {_message(e)}")
    return "; ".join(messages)


class BodyLimit:
    """413 for a request body over ``max_bytes``, raised as an HTTPException while the endpoint reads it, so the
    app's JSON error handler answers. (FastAPI's own ``max_body_size`` replaces that answer with a plain-text
    413 whenever the Content-Length header is over the limit.)

    Any answer given before the body was read to its end (a 413, a 401, a 404) first reads and discards the rest,
    up to ``drain_bytes`` and ``drain_s``: a server that closes a connection with unread data resets it, and a
    client still sending would see "connection reset" instead of its JSON error."""

    def __init__(self, app, max_bytes: int, drain_bytes: int = DRAIN_BYTES, drain_s: float = DRAIN_S):
        self.app, self.max_bytes, self.drain_bytes, self.drain_s = app, max_bytes, drain_bytes, drain_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        received, body_done = 0, False

        async def limited_receive():
            nonlocal received, body_done
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise HTTPException(413)
            message = await receive()
            received += len(message.get("body", b""))
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            if received > self.max_bytes:
                raise HTTPException(413)
            return message

        async def drain():
            nonlocal body_done
            drained = 0
            while not body_done and drained <= self.drain_bytes:
                message = await receive()
                drained += len(message.get("body", b""))
                body_done = message["type"] != "http.request" or not message.get("more_body", False)

        async def send_after_draining(message):
            if message["type"] == "http.response.start" and not body_done:
                try:
                    await asyncio.wait_for(drain(), self.drain_s)
                except TimeoutError:
                    pass  # a client this slow gets the answer and a closed connection
            await send(message)

        await self.app(scope, limited_receive, send_after_draining)


ERROR_TYPES = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error"}


def _error(status: int, message: str, *, field: str | None = None, errors: list | None = None,
           headers=None) -> JSONResponse:
    """Every error's JSON: ``message`` (and ``errors``, per field, for invalid requests), and the same as OpenAI's
    ``error`` object, so that OpenAI clients show the message too."""
    kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = {"message": message, **({"errors": errors} if errors is not None else {}),
            "error": {"message": message, "type": kind, "param": field, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


async def require_key(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None,
                                                               Depends(HTTPBearer(auto_error=False))]):
    """The routes behind ``--api-key`` (all but /health) depend on this when the app has a key."""
    given = credentials.credentials.encode() if credentials is not None else b""
    if not secrets.compare_digest(given, request.app.state.settings.api_key.encode()):  # constant time
        raise HTTPException(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                            headers={"WWW-Authenticate": "Bearer"})


@asynccontextmanager
async def lifespan(app):
    await app.state.batcher.start()
    yield
    await app.state.batcher.close()


# The app's routes read what they serve from app.state: backend, batcher, settings, created (create_app sets them).
ERRORS = {code: {"model": Error} for code in (401, 413, 422, 429, 503)}
public = APIRouter()
protected = APIRouter()  # behind the API key when there is one


@public.get("/health", response_model=Health, tags=["service"])
async def health(request: Request):
    backend, batcher = request.app.state.backend, request.app.state.batcher
    return Health(status="ok", model=backend.name, engine=getattr(backend, "engine", None),
                  decoding=getattr(backend, "decoding", None), lone_question=getattr(backend, "lone_question", None),
                  pending=batcher.pending, batches=batcher.batches, rewritten=batcher.rewritten)


def rewrite_endpoint(RewriteRequest: type[BaseModel]):
    """POST /v1/rewrite for requests of ``RewriteRequest`` (:func:`request_model`: its limits are the app's)."""
    async def rewrite(body: RewriteRequest, request: Request):
        start = time.perf_counter()
        rewrites = await rewrite_texts(request.app.state, body.texts())
        return RewriteResponse(rewrites=rewrites, model=request.app.state.backend.name,
                               ms=round((time.perf_counter() - start) * 1000, 1))
    return rewrite


async def rewrite_texts(state, texts: list[str]) -> list[str]:
    """``texts`` rewritten by the app's batcher; a full queue, a timeout or a shutdown as the HTTP error it is."""
    timeout = state.settings.request_timeout_s
    try:
        return await state.batcher.rewrite(texts, timeout=timeout)
    except QueueFull as e:
        raise HTTPException(429, str(e), headers={"Retry-After": str(e.retry_after)}) from None
    except TimeoutError:
        raise HTTPException(503, f"the request waited more than its timeout of {timeout:g} s "
                                 "(the server is busy); retry later") from None
    except ShuttingDown as e:
        raise HTTPException(503, str(e)) from None


@protected.get("/v1/models", response_model=ModelList, responses=ERRORS, tags=["openai"])
async def models(request: Request):
    return ModelList(data=[ModelCard(id=request.app.state.backend.name, created=request.app.state.created)])


@protected.post("/v1/chat/completions", response_model=ChatCompletion, responses=ERRORS, tags=["openai"])
async def chat_completions(body: ChatCompletionRequest, request: Request):
    backend = request.app.state.backend
    try:
        question = question_of(body, backend.name, request.app.state.settings.max_question_chars)
    except UnsupportedRequest as e:
        return _error(e.status, f"{e.field}: {e}", field=e.field)
    [text] = await rewrite_texts(request.app.state, [question])
    rewriter = getattr(backend, "rewriter", None)
    return completion(body, question, text, backend.name, tokenizer=getattr(rewriter, "tokenizer", None),
                      prompt=getattr(rewriter, "prompt", None))


@protected.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page():
    return HTMLResponse(PAGE.read_text(encoding="utf-8"))


@protected.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request):
    return request.app.openapi()


@protected.get("/docs", include_in_schema=False)
async def docs():
    return get_swagger_ui_html(openapi_url="openapi.json", title="qrewrite - API docs")


async def invalid_request(request: Request, exc: RequestValidationError):
    # "input" is left out: it can be the whole (large) body
    details = [{"field": _field(e), "message": _message(e), "type": e.get("type")} for e in exc.errors()]
    return _error(422, _validation_message(exc.errors()), errors=jsonable_encoder(details),
                  field=details[0]["field"] if details else None)


async def http_error(request: Request, exc: StarletteHTTPException):
    message = exc.detail
    if exc.status_code == 400 and exc.__cause__ is not None:
        # FastAPI's 400 for a body json.loads cannot read at all (not UTF-8, nested too deep): malformed JSON
        reason = type(exc.__cause__).__name__
        return _error(422, f"the request body is not valid JSON ({reason})", field="body",
                      errors=[{"field": "body", "message": str(exc.__cause__)[:200], "type": "json_invalid"}])
    if exc.status_code == 413:
        message = f"the request body is larger than the limit of {request.app.state.settings.max_body_bytes} bytes"
    return _error(exc.status_code, message, headers=exc.headers)


async def internal_error(request: Request, exc: Exception):
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _error(500, f"internal error ({type(exc).__name__}); see the server log")


def create_app(backend, settings: Settings | None = None) -> FastAPI:
    """The app over ``backend`` with ``settings``' limits (checked when ``settings`` was made)."""
    settings = settings or Settings()
    # --threads is torch's for the transformers engine; CTranslate2 takes it as its own (a lone question on
    # prompt lookup then keeps torch's threads, every core)
    torch_threads = None if getattr(backend, "engine", None) == "ctranslate2" else settings.threads
    batcher = Batcher(backend, max_batch=settings.batch_size, max_wait_ms=settings.max_wait_ms,
                      max_queue=settings.max_queue, threads=torch_threads)
    # docs_url / openapi_url are protected routes of their own, behind the API key when there is one
    app = FastAPI(title="qrewrite", summary="Rewrite messy questions into the clean questions they meant.",
                  lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.backend, app.state.batcher, app.state.settings = backend, batcher, settings
    app.state.created = int(time.time())
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    key = [Depends(require_key)] if settings.api_key else []
    app.include_router(public)
    app.add_api_route("/v1/rewrite", rewrite_endpoint(request_model(settings)), methods=["POST"],
                      response_model=RewriteResponse, responses=ERRORS, dependencies=key, tags=["rewrite"])
    app.include_router(protected, dependencies=key)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)
    return app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(opts: ServeOptions) -> None:
    """Load the backend, then serve until SIGTERM / Ctrl-C (requests in flight are finished first)."""
    import uvicorn

    settings = opts.settings
    if not is_loopback(opts.host) and not settings.api_key:
        log.warning("serving on %s without an API key: anyone who can reach this address can use it "
                    "(set --api-key or %s)", opts.host, API_KEY_ENV)
    backend = load_backend(opts.model, prompt_lookup_tokens=opts.prompt_lookup_tokens, threads=settings.threads or 0,
                           lone_question=opts.lone_question, **opts.loading())
    app = create_app(backend, settings)
    opts.check_address()  # again: the model took a while to load
    if threading.current_thread() is threading.main_thread():
        # uvicorn catches Ctrl-C and SIGTERM while it serves and raises them again once it has shut down: let
        # them end the process then (the `qrewrite` command turns them into a one-line 'interrupted' otherwise)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # a drain longer than any request can wait: uvicorn stops accepting, finishes what is in flight, then exits.
    # uvicorn has no deadline for a connection that never finishes its headers: exposed beyond localhost, put a
    # reverse proxy in front that times them out (docs/serving.md)
    uvicorn.run(app, host=opts.host, port=opts.port, log_level=opts.log_level, server_header=False,
                timeout_graceful_shutdown=int(settings.request_timeout_s) + 5)
