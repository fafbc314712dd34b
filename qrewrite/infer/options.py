"""The options of every command that rewrites with a model (``evaluate``, ``rewrite``, ``serve``), declared once.

Free of torch, so that ``--help`` stays fast."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from qrewrite.errors import ConfigError
from qrewrite.flags import option, positive_int
from qrewrite.infer.decoding import ENGINES, GENERATION_BATCH_SIZE, GREEDY, QUANTIZATIONS, Decoding

INFERENCE_PRECISIONS = ("auto", "bf16", "fp16", "fp32")


@dataclass(kw_only=True, frozen=True)
class ModelOptions:
    """What rewrites, and how: the model, its dtype, the decoding and the engine."""
    model: str = option(help="run dir (weights/<run>), model or adapter dir, hub id, 'smollm2' (the untuned offline "
                             "model), 'copy' (copy-the-input baseline) or 'rules' (rule-based baseline)")
    max_new_tokens: int | None = option(None, "generation budget (default: the model's own, saved with it at "
                                              "training; else 64)", parse=positive_int)
    precision: str = option("auto", "inference dtype (default: auto = bf16 on capable GPUs, else fp32)",
                            choices=INFERENCE_PRECISIONS)
    trust_remote_code: bool = option(False, "allow the model repository's own Python code to run (off by default)",
                                     action="store_true")
    decoding: Decoding = option(GREEDY)
    engine: str = option("transformers", "what decodes: transformers (default; every decoding option) or "
                                         "ctranslate2 (the model converted once to int8 CPU kernels, cached in the "
                                         "run directory: faster on CPU; greedy and beams, no copy bonus)",
                         choices=ENGINES)
    quantization: str | None = option(None, "--engine ctranslate2's weights and compute type (default: int8, "
                                            "int8_bfloat16 where the CPU computes bf16)", choices=QUANTIZATIONS)
    replicas: int = option(1, "parts of a batch decoded at once, each on its own share of the cores (one copy of "
                              "the weights; CTranslate2's inter_threads, or threads of torch): on 2 cores, 2 was "
                              "measured faster for CTranslate2 int8 and for --precision bf16", parse=positive_int)

    def __post_init__(self):
        if self.quantization and self.engine != "ctranslate2":
            raise ConfigError("--quantization sets --engine ctranslate2's weights; add --engine ctranslate2")

    def loading(self) -> dict:
        """The keywords of :func:`qrewrite.infer.rewriter.load_rewriter` (after the model) these options set."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(ModelOptions) if f.name != "model"}


@dataclass(kw_only=True, frozen=True)
class RewriteOptions(ModelOptions):
    """A model's options plus the batch it rewrites in (``evaluate``, ``rewrite``)."""
    batch_size: int = option(GENERATION_BATCH_SIZE, "questions per generation batch", parse=positive_int)

    def loading(self) -> dict:
        return {**super().loading(), "batch_size": self.batch_size}
