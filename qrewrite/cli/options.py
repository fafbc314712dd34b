"""Option types and the options several subcommands share (the model, decoding and generation)."""

from __future__ import annotations

import argparse

from qrewrite.config import GENERATION_BATCH_SIZE
from qrewrite.files import PROJECT_ROOT
from qrewrite.infer.decoding import ENGINES, QUANTIZATIONS

DISFL_QA = PROJECT_ROOT.parent / "shared" / "data" / "disfl-qa"


def bounded_int(low: int, high: int | None = None):
    """An argparse type: a whole number from ``low`` (to ``high``), with a message saying so."""
    def parse(text: str) -> int:
        value = int(text)
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be a whole number >= {low}" + (f" and <= {high}" if high else "")
                                             + f", got {text}")
        return value
    return parse


positive_int, non_negative_int = bounded_int(1), bounded_int(0)


def probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def open_fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value



def add_model_option(p):
    p.add_argument("--model", required=True,
                   help="run dir (weights/<run>), model or adapter dir, hub id, 'smollm2' (the untuned offline "
                        "model), 'copy' (copy-the-input baseline) or 'rules' (rule-based baseline)")


def add_decoding_option(p):
    p.add_argument("--num-beams", type=positive_int, default=1,
                   help="beam search with this many beams (default: 1 = greedy, as the model was selected with)")
    p.add_argument("--copy-bonus", type=non_negative_float, default=0.0,
                   help="add this to the logits of the question's own tokens: fewer paraphrased words "
                        "(default: 0 = none)")


def decoding_from_args(args):
    from qrewrite.infer.decoding import Decoding
    return Decoding(num_beams=args.num_beams, copy_bonus=args.copy_bonus)




def add_engine_options(p):
    p.add_argument("--engine", default="transformers", choices=ENGINES,
                   help="what decodes: transformers (default; every decoding option) or ctranslate2 (the model "
                        "converted once to int8 CPU kernels, cached in the run directory: faster on CPU; greedy "
                        "and beams, no copy bonus)")
    p.add_argument("--quantization", choices=QUANTIZATIONS,
                   help="--engine ctranslate2's weights and compute type (default: int8, int8_bfloat16 where the "
                        "CPU computes bf16)")


def engine_from_args(args) -> dict:
    """The keyword arguments of :func:`qrewrite.infer.rewriter.load_rewriter` that choose the engine."""
    if args.quantization and args.engine != "ctranslate2":
        from qrewrite.errors import ConfigError
        raise ConfigError("--quantization sets --engine ctranslate2's weights; add --engine ctranslate2")
    return {"engine": args.engine, "quantization": args.quantization}


def add_generation_options(p):
    p.add_argument("--batch-size", type=positive_int, default=GENERATION_BATCH_SIZE,
                   help=f"questions per generation batch (default: {GENERATION_BATCH_SIZE})")
    p.add_argument("--max-new-tokens", type=positive_int,
                   help="generation budget (default: the model's own, saved with it at training; else 64)")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"],
                   help="inference dtype (default: auto = bf16 on capable GPUs, else fp32)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow the model repository's own Python code to run (off by default)")


