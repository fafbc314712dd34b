"""The server's limits and switches (free of FastAPI and torch, so ``--help`` stays fast)."""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

from qrewrite.errors import ConfigError
from qrewrite.flags import bounded_int, non_negative_int, option
from qrewrite.infer.decoding import PROMPT_LOOKUP_TOKENS
from qrewrite.infer.options import ModelOptions

API_KEY_ENV = "QREWRITE_API_KEY"
# how a lone question (a batch of one) is rewritten: on the engine's own path, or by prompt lookup on a bf16 copy of
# the transformers model (on CPUs with native bf16 faster than both fp32 prompt lookup and CTranslate2 int8's batch
# of one: benchmarks/results/serve_cpu.md)
LONE_QUESTION_PATHS = ("engine", "prompt-lookup-bf16")


@dataclass
class Settings:
    batch_size: int = option(32, "questions rewritten together at most (1 = batching off)")
    max_wait_ms: float = option(5.0, "a batch starts once no new question has come for this long (or for 2% of a "
                                     "batch's recent time, if longer), or when full")
    max_queue: int = option(256, "questions waiting at most; past it requests get 429")
    request_timeout_s: float = option(30.0, "seconds a request may wait before a 503", flag="--request-timeout",
                                        metavar="SECONDS")
    max_question_chars: int = option(1000, "longest question accepted")
    max_questions: int = option(64, "questions per request at most")
    max_body_bytes: int = option(256 * 1024, "largest request body accepted; a larger one gets 413")
    threads: int | None = option(None, "torch threads for generation (default: torch's, one per core; on a CPU "
                                       "shared with other work, 1 can be faster); with --engine ctranslate2, "
                                       "CTranslate2's threads per replica instead")
    api_key: str | None = option(None, f"require 'Authorization: Bearer KEY' on every route but /health (default: "
                                       f"${API_KEY_ENV})", env=API_KEY_ENV)
    cors_origins: list[str] = option(help="allow browser requests from this origin (repeatable; none by default)",
                                     default_factory=list, flag="--cors-origin", action="append", metavar="ORIGIN")

    def __post_init__(self):  # checked once, when made (by the command line: before the slow imports)
        for name in ("batch_size", "max_queue", "max_question_chars", "max_questions", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("--threads must be >= 1")
        if self.max_wait_ms < 0 or self.request_timeout_s <= 0:
            raise ConfigError("--max-wait-ms must be >= 0 and --request-timeout > 0")
        if self.max_questions > self.max_queue:
            raise ConfigError(f"--max-questions ({self.max_questions}) must not exceed --max-queue "
                              f"({self.max_queue}): such a request could never be queued")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError(f"the API key (--api-key or {API_KEY_ENV}) is empty")


LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


@dataclass(kw_only=True, frozen=True)
class ServeOptions(ModelOptions):
    """``serve``'s options: what rewrites (the model's options), where it listens, and its limits."""
    host: str = option("127.0.0.1", "address to bind (default: 127.0.0.1, this machine only)")
    port: int = option(8000, "port", parse=bounded_int(1, 65535))
    settings: Settings = option(default_factory=Settings)
    prompt_lookup_tokens: int = option(PROMPT_LOOKUP_TOKENS, f"draft tokens per step for a lone question (default: "
                                                             f"{PROMPT_LOOKUP_TOKENS}; 0 = plain greedy)",
                                       parse=non_negative_int)
    lone_question: str = option("engine", "how a lone question is rewritten: engine (default: the transformers "
                                          "engine by prompt lookup, CTranslate2 as a batch of one) or "
                                          "prompt-lookup-bf16 (prompt lookup on a bf16 copy of the model, either "
                                          "engine; fast on CPUs with native bf16, e.g. avx512_bf16 or AMX; greedy "
                                          "decoding only)", choices=LONE_QUESTION_PATHS)
    log_level: str = option("info", "uvicorn's log level", choices=LOG_LEVELS)

    def check_address(self) -> None:
        """One clear error when ``host``:``port`` cannot be listened on (a port in use, an address not of this
        machine), where uvicorn would print its own text and exit with status 3. Bound the way uvicorn binds,
        then let go."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, self.port))
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise ConfigError(f"--port {self.port}: {self.host}:{self.port} is already in use (another server "
                                      "listens there); stop it or choose another --port") from None
                raise ConfigError(f"--host {self.host} --port {self.port}: cannot listen there: "
                                  f"{e.strerror or e}") from None
