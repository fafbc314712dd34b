"""``qrewrite score``: score a predictions file against references."""

from __future__ import annotations

from qrewrite.data.records import FORMATS_HELP


def add_score(sub):
    p = sub.add_parser("score", help="score a predictions file against references (e.g. the blind test's)",
                       description="Score {\"id\", \"prediction\"} JSON Lines (what rewrite --no-input writes) against "
                                   "references in any format prepare reads (raw Disfl-QA included): ROUGE-1/2/L, "
                                   "BLEU, exact match. Every reference needs one prediction and every prediction a "
                                   "reference.")
    p.add_argument("--predictions", required=True, help="JSON Lines of {\"id\", \"prediction\"}")
    p.add_argument("--references", required=True, help=f"references: {FORMATS_HELP}")
    p.add_argument("--against", metavar="OTHER", help="a second predictions file of the same questions: print the "
                                                    "paired difference (this minus OTHER) and its 95%% interval")
    p.add_argument("--json", action="store_true", help="print one JSON object (rougeL, exact_match in 0..1, their "
                                                       "95%% intervals rougeL_ci, exact_match_ci, ...)")
    p.set_defaults(func=cmd_score)


def cmd_score(args) -> int:
    import json

    from qrewrite.eval.scoring import format_scores, score_predictions
    scores = score_predictions(args.predictions, args.references, args.against)
    print(json.dumps(scores, ensure_ascii=False) if args.json else format_scores(scores))
    return 0
