"""What every rewriter is (:class:`Rewriter`), and the names of the baselines that need no model."""

from __future__ import annotations

COPY = "copy"

RULES = "rules"

BASELINES = (COPY, RULES)  # rewriters without a model

class Rewriter:
    name = method = source = ""
    engine = None  # what decodes: "transformers" or "ctranslate2" (None: a baseline without a model)

    def stream(self, questions: list[str], progress=None):
        raise NotImplementedError

    def rewrite(self, questions: list[str], progress=None) -> list[str]:
        out = [""] * len(questions)
        for i, text in self.stream(questions, progress):
            out[i] = text
        return out

    def rewrite_batch(self, questions: list[str]) -> list[str]:
        """One small batch, as fast as possible (a model-backed rewriter reuses its prompt-prefix cache)."""
        return self.rewrite(questions)
