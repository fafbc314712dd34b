"""``qrewrite evaluate``: rewrite a split, score it, write outputs/."""

from __future__ import annotations

from pathlib import Path

from qrewrite.cli.options import (
    add_decoding_option,
    add_engine_options,
    add_generation_options,
    add_model_option,
    decoding_from_args,
    engine_from_args,
    non_negative_int,
)


def add_evaluate(sub):
    """Rewrite every question of --data and score against the references. --model copy / rules score the
    baselines that need no model."""
    p = sub.add_parser("evaluate", description=add_evaluate.__doc__,
                       help="score a model on a split; writes metrics.json and predictions")
    add_model_option(p)
    p.add_argument("--data", required=True, help="canonical split to score (e.g. dataset/valid.json)")
    p.add_argument("--out", required=True, help="evaluation directory (e.g. outputs/<run>)")
    p.add_argument("--name", help="run name shown in the results table (default: --out's name)")
    p.add_argument("--data-label", help="data name shown in the results table (default: the file's stem)")
    p.add_argument("--train-data", help="also rewrite a sample of this split into train_io.json")
    p.add_argument("--train-sample", type=non_negative_int, default=100,
                   help="questions in train_io.json (default: 100)")
    p.add_argument("--few-shot", type=non_negative_int, default=0, metavar="K",
                   help="put K seeded pairs of --shots-from in the prompt as earlier turns (an untuned model's best "
                        "effort without training; default 0)")
    p.add_argument("--shots-from", default="dataset/train.json",
                   help="training split the few-shot pairs come from (default: dataset/train.json)")
    add_generation_options(p)
    add_decoding_option(p)
    add_engine_options(p)
    p.add_argument("--limit", type=non_negative_int, default=0, help="score only the first N questions (0 = all)")
    p.set_defaults(func=cmd_evaluate)



def cmd_evaluate(args) -> int:
    from qrewrite.eval.evaluate import evaluate_model
    result = evaluate_model(args.model, args.data, args.out, batch_size=args.batch_size,
                            max_new_tokens=args.max_new_tokens, limit=args.limit, train_data=args.train_data,
                            train_sample=args.train_sample, name=args.name, data_label=args.data_label,
                            few_shot=args.few_shot, shots_from=args.shots_from, decoding=decoding_from_args(args),
                            precision=args.precision, trust_remote_code=args.trust_remote_code,
                            **engine_from_args(args))
    m = result["metrics"]
    print(f"{result['run']['name']} on {result['run']['data']} ({m['n']} questions): ROUGE-L {m['rougeL']:.4f}  "
          f"ROUGE-1 {m['rouge1']:.4f}  ROUGE-2 {m['rouge2']:.4f}  BLEU {m['bleu']:.2f}  "
          f"EM {m['exact_match']:.2%}  changed {m['changed_input']:.2%}")
    print(f"written: {Path(args.out) / 'metrics.json'}")
    return 0
