"""``qrewrite serve``: the HTTP server's options (FastAPI, uvicorn and torch load only when it runs)."""

from __future__ import annotations

import os

from qrewrite.cli.options import (
    add_decoding_option,
    add_engine_options,
    add_generation_options,
    add_model_option,
    bounded_int,
    decoding_from_args,
    engine_from_args,
)
from qrewrite.infer.decoding import PROMPT_LOOKUP_TOKENS


def add_serve(sub):
    """Serve POST /v1/rewrite, GET /health, a page at / and the API docs at /docs. Concurrent requests are
    rewritten together in batches; a lone question decodes with prompt lookup. Stop with Ctrl-C or SIGTERM:
    requests in flight are finished first."""
    from qrewrite.serve.settings import API_KEY_ENV
    from qrewrite.serve.settings import DEFAULTS as d

    p = sub.add_parser("serve", description=add_serve.__doc__,
                       help="serve rewriting over HTTP (FastAPI + uvicorn, batched)")
    add_model_option(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=bounded_int(1, 65535), default=8000, help="port (default: 8000)")
    p.add_argument("--api-key", default=os.environ.get(API_KEY_ENV),
                   help=f"require 'Authorization: Bearer KEY' on every route but /health (default: ${API_KEY_ENV})")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="allow browser requests from this origin (repeatable; none by default)")
    add_generation_options(p)
    add_decoding_option(p)
    add_engine_options(p)
    p.set_defaults(batch_size=d.batch_size)
    p.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms,
                   help="a batch starts once no new question has come for this long (or for 2%% of a batch's "
                        f"recent time, if longer), or when full (default: {d.max_wait_ms:g})")
    p.add_argument("--prompt-lookup-tokens", type=int, default=PROMPT_LOOKUP_TOKENS,
                   help=f"draft tokens per step for a lone question (default: {PROMPT_LOOKUP_TOKENS}; "
                        "0 = plain greedy)")
    p.add_argument("--threads", type=int,
                   help="torch threads for generation (default: torch's, one per core; on a CPU shared with other "
                        "work, 1 can be faster)")
    p.add_argument("--max-queue", type=int, default=d.max_queue,
                   help=f"questions waiting at most; past it requests get 429 (default: {d.max_queue})")
    p.add_argument("--request-timeout", type=float, default=d.request_timeout_s,
                   help=f"seconds a request may wait before a 503 (default: {d.request_timeout_s:g})")
    p.add_argument("--max-question-chars", type=int, default=d.max_question_chars,
                   help=f"longest question accepted (default: {d.max_question_chars})")
    p.add_argument("--max-questions", type=int, default=d.max_questions,
                   help=f"questions per request at most (default: {d.max_questions})")
    p.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes,
                   help=f"largest request body accepted (default: {d.max_body_bytes})")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    from qrewrite.serve.settings import Settings
    settings = Settings(batch_size=args.batch_size, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
                        request_timeout_s=args.request_timeout, max_question_chars=args.max_question_chars,
                        max_questions=args.max_questions, max_body_bytes=args.max_body_bytes,
                        threads=args.threads, api_key=args.api_key, cors_origins=args.cors_origin)
    settings.check()  # before the slow imports and the model load
    if args.prompt_lookup_tokens < 0:
        from qrewrite.errors import ConfigError
        raise ConfigError("--prompt-lookup-tokens must be >= 0")
    engine = engine_from_args(args)
    from qrewrite.serve.app import serve
    serve(args.model, host=args.host, port=args.port, settings=settings, max_new_tokens=args.max_new_tokens,
          precision=args.precision, trust_remote_code=args.trust_remote_code,
          prompt_lookup_tokens=args.prompt_lookup_tokens, log_level=args.log_level, decoding=decoding_from_args(args),
          **engine)
    return 0
