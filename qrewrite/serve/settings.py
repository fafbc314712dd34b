"""The server's limits and switches (free of FastAPI and torch, so ``--help`` stays fast)."""

from __future__ import annotations

from dataclasses import dataclass, field

from qrewrite.errors import ConfigError

API_KEY_ENV = "QREWRITE_API_KEY"


@dataclass
class Settings:
    batch_size: int = 32            # questions rewritten together at most (1 = batching off)
    max_wait_ms: float = 5.0        # a batch starts after this long without a new question (or when full)
    max_queue: int = 256            # questions accepted and not yet answered, at most (then 429)
    request_timeout_s: float = 30.0  # a request waiting longer gets 503
    max_question_chars: int = 1000
    max_questions: int = 64         # per request
    max_body_bytes: int = 256 * 1024  # then 413
    threads: int | None = None      # torch intra-op threads for generation (None: torch's default)
    api_key: str | None = None
    cors_origins: list[str] = field(default_factory=list)

    def check(self) -> None:
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


DEFAULTS = Settings()
