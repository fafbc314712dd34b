"""``qrewrite prepare``: raw data -> dataset/ splits."""

from __future__ import annotations

from qrewrite.cli.options import (
    non_negative_int,
    open_fraction,
    positive_int,
    probability,
)


def add_prepare(sub):
    p = sub.add_parser("prepare", help="convert raw data into dataset/ splits",
                       description="Convert raw Disfl-QA (a directory with train.json and dev.json), the older "
                                   "list format, or JSON/JSONL/CSV with named columns into canonical splits.")
    p.add_argument("--source", required=True, help="raw data directory or training file")
    p.add_argument("--out", default="dataset", help="output directory (default: dataset)")
    p.add_argument("--valid", help="validation file when --source is a single file")
    p.add_argument("--test", help="test file when --source is a single file")
    p.add_argument("--valid-fraction", type=open_fraction, default=0.1,
                   help="share of a single source file held out for validation (default: 0.1)")
    p.add_argument("--valid-split", choices=("auto", "topic"), default="auto",
                   help="auto (default): the validation file, else a random --valid-fraction of the source; topic: "
                        "hold out whole topics of train as valid.json (about --valid-size questions, seeded), the "
                        "validation file (Disfl-QA dev, same topics as train) written beside it as valid_dev.json")
    p.add_argument("--valid-size", type=positive_int, default=1000,
                   help="questions held out by --valid-split topic (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed for the split and the typo noise (default: 0)")
    p.add_argument("--typo-copies", type=non_negative_int, default=0,
                   help="typo'd copies of each training input to add")
    p.add_argument("--typo-rate", type=probability, default=0.05, help="per-character typo probability (default: 0.05)")
    p.add_argument("--no-typo-eval", action="store_true", help="do not write valid_typo.json / test_typo.json")
    p.add_argument("--strict", action="store_true", help="fail on the first bad record instead of skipping it")
    p.add_argument("--input-field", help="input column/field name (generic JSON/JSONL/CSV)")
    p.add_argument("--target-field", help="target column/field name")
    p.add_argument("--id-field", help="id column/field name")
    p.add_argument("--download", action="store_true",
                   help="download the official Disfl-QA files into --source first when they are missing")
    p.set_defaults(func=cmd_prepare)


def cmd_prepare(args) -> int:
    from qrewrite.data.prepare import prepare_data
    report = prepare_data(args.source, args.out, valid=args.valid, test=args.test,
                          valid_fraction=args.valid_fraction, seed=args.seed, typo_copies=args.typo_copies,
                          typo_rate=args.typo_rate, typo_eval=not args.no_typo_eval, strict=args.strict,
                          input_field=args.input_field, target_field=args.target_field, id_field=args.id_field,
                          download=args.download, valid_split=args.valid_split, valid_size=args.valid_size)
    print(format_prepare_report(report))
    return 0


def format_prepare_report(report: dict) -> str:
    lines = []
    for split, rep in report.get("splits", {}).items():
        lines.append(f"{split}: {rep.get('n_kept')} kept of {rep.get('n_read')} read from {rep.get('source')}")
        for kind in ("cleaned", "skipped"):
            for reason, ids in (rep.get(kind) or {}).items():
                if ids:
                    shown = ", ".join(map(str, ids[:10])) + (" ..." if len(ids) > 10 else "")
                    lines.append(f"  {kind} ({reason}): {len(ids)} [{shown}]")
    split_off = report.get("split_off") or {}
    if split_off.get("method") == "topic":
        lines.append(f"valid: {split_off['n_topics_held_out']} of {split_off['n_topics_found']} topics held out "
                     f"({', '.join(' '.join(w[:3]) for w in split_off['held_out_topic_words'])})")
        for split, share in split_off.get("seen_name_share", {}).items():
            if share is not None:
                lines.append(f"  {split}: {share:.0%} of its references' capitalised words occur in train's")
    lines.append(f"written: {', '.join(report.get('files', [])) or '(see prepare_report.json)'}")
    return "\n".join(lines)
