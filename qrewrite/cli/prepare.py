"""``qrewrite prepare``: raw data -> dataset/ splits."""

from __future__ import annotations

import argparse
import dataclasses

from qrewrite.data.prepare import PrepareOptions
from qrewrite.data.records import FORMATS_HELP
from qrewrite.errors import ConfigError
from qrewrite.flags import add_options, from_args, non_negative_int


def add_prepare(sub):
    p = sub.add_parser("prepare", help="convert raw data into dataset/ splits",
                       description="Convert raw question pairs into canonical splits: a directory such as raw "
                                   "Disfl-QA's (train.json, dev.json), or files of " + FORMATS_HELP + ".")
    add_options(p, PrepareOptions)
    # typo'd training copies moved to the training stage (one place makes them); the old flag says where
    p.add_argument("--typo-copies", type=non_negative_int, default=0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_prepare)


def cmd_prepare(args) -> int:
    if args.typo_copies:
        raise ConfigError(f"prepare no longer adds typo'd training copies: training makes them, seeded per copy "
                          f"(set typo_copies: {args.typo_copies} in the training config, or "
                          f"`qrewrite train --typo-copies {args.typo_copies}`)")
    from qrewrite.data.prepare import prepare_data
    opts = from_args(PrepareOptions, args)
    report = prepare_data(**dataclasses.asdict(opts))
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
