"""``qrewrite export``: a run's model converted for deployment without qrewrite."""

from __future__ import annotations

from pathlib import Path

from qrewrite.infer.decoding import QUANTIZATIONS

FORMATS = ("ctranslate2",)


def add_export(sub):
    """Convert a run's model/ (or a model directory) to another format, with its tokenizer and prompt settings
    (qrewrite.json), for serving without qrewrite: --format ctranslate2 writes a CTranslate2 model directory
    (int8 by default) that ctranslate2.Generator loads; building its prompts with the tokenizer's chat template
    needs ctranslate2, transformers and jinja2."""
    p = sub.add_parser("export", description=add_export.__doc__,
                       help="convert a run's model for deployment (CTranslate2)")
    p.add_argument("--format", required=True, choices=FORMATS, help="the target format")
    p.add_argument("model", metavar="RUN", help="run directory (weights/<run>) or a model directory")
    p.add_argument("out", metavar="OUT", help="directory to write (new, or an earlier export to replace)")
    p.add_argument("--quantization", choices=QUANTIZATIONS,
                   help="weights and compute type (default: int8, int8_bfloat16 where the CPU computes bf16)")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from qrewrite.infer.ct2 import export_ctranslate2
    out = export_ctranslate2(args.model, args.out, args.quantization)
    print(f"written: {out} (load it with ctranslate2.Generator({str(Path(out))!r}) and its tokenizer with "
          f"transformers' AutoTokenizer, whose apply_chat_template needs jinja2: pip install ctranslate2 transformers "
          f"jinja2; the prompt settings are in {Path(out) / 'qrewrite.json'})")
    return 0
