"""``qrewrite serve``: the HTTP server's options (FastAPI, uvicorn and torch load only when it runs)."""

from __future__ import annotations

from qrewrite.flags import add_options, from_args
from qrewrite.serve.options import ServeOptions


def add_serve(sub):
    """Serve POST /v1/rewrite, the OpenAI-compatible POST /v1/chat/completions and GET /v1/models, GET /health, a
    page at / and the API docs at /docs. Concurrent requests are rewritten together in batches; a lone question
    decodes with prompt lookup. Stop with Ctrl-C or SIGTERM: requests in flight are finished first."""
    p = sub.add_parser("serve", description=add_serve.__doc__,
                       help="serve rewriting over HTTP (FastAPI + uvicorn, batched)")
    add_options(p, ServeOptions)
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    opts = from_args(ServeOptions, args)  # its Settings are checked here, before the slow imports and the model load
    opts.check_address()
    from qrewrite.serve.app import serve
    serve(opts)
    return 0
