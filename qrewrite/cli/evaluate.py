"""``qrewrite evaluate``: rewrite a split, score it, write outputs/."""

from __future__ import annotations

from pathlib import Path

from qrewrite.eval.options import EvaluateOptions
from qrewrite.flags import add_options, from_args


def add_evaluate(sub):
    """Rewrite every question of --data and score against the references. --model copy / rules score the
    baselines that need no model."""
    p = sub.add_parser("evaluate", description=add_evaluate.__doc__,
                       help="score a model on a split; writes metrics.json and predictions")
    add_options(p, EvaluateOptions)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    from qrewrite.eval.evaluate import evaluate
    result = evaluate(from_args(EvaluateOptions, args))
    m = result["metrics"]
    print(f"{result['run']['name']} on {result['run']['data']} ({m['n']} questions): ROUGE-L {m['rougeL']:.4f}  "
          f"ROUGE-1 {m['rouge1']:.4f}  ROUGE-2 {m['rouge2']:.4f}  BLEU {m['bleu']:.2f}  "
          f"EM {m['exact_match']:.2%}  changed {m['changed_input']:.2%}")
    print(f"written: {Path(args.out) / 'metrics.json'}")
    return 0
