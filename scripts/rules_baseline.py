#!/usr/bin/env python
"""Score the rule-based rewriter (qrewrite.infer.rules) and the copy-input baseline on a raw Disfl-QA split,
overall and per kind of disfluency (qrewrite.data.kinds.classify_input), with qrewrite.metrics.

    python scripts/rules_baseline.py [--data DEV_FILE] [--json out.json]

--data defaults to dev.json in $QREWRITE_DISFL_QA (the raw Disfl-QA directory); it is read as every command reads
data (qrewrite.data.records.read_records: any format prepare reads, every record checked and cleaned).

The rules were tuned on the train split only; dev is for the final measurement.
"""

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qrewrite.data.kinds import KINDS, classify_input  # noqa: E402
from qrewrite.data.prepare import DISFL_QA_ENV  # noqa: E402
from qrewrite.data.records import read_records  # noqa: E402
from qrewrite.infer.rules import rewrite_questions  # noqa: E402
from qrewrite.metrics import compute_metrics  # noqa: E402


def scores(inputs: list[str], predictions: list[str], references: list[str], kinds: list[str]) -> dict:
    """{"all": metrics, kind: metrics, ...} for the kinds present, in KINDS order."""
    out = {"all": compute_metrics(inputs, predictions, references)}
    for kind in KINDS:
        idx = [i for i, k in enumerate(kinds) if k == kind]
        if idx:
            out[kind] = compute_metrics(*([seq[i] for i in idx] for seq in (inputs, predictions, references)))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    raw = os.environ.get(DISFL_QA_ENV)
    parser.add_argument("--data", type=Path, default=Path(raw) / "dev.json" if raw else None, required=not raw,
                        help=f"the split to score, e.g. raw Disfl-QA's dev.json (default: ${DISFL_QA_ENV}/dev.json)")
    parser.add_argument("--json", type=Path, help="also write the scores here")
    args = parser.parse_args(argv)
    records, report = read_records(args.data)
    if report.n_skipped:
        print(report.summary(), file=sys.stderr)
    inputs = [r["input"] for r in records]
    references = [r["target"] for r in records]
    kinds = [classify_input(x, y) for x, y in zip(inputs, references)]
    result = {"data": str(args.data), "rules": scores(inputs, rewrite_questions(inputs), references, kinds),
              "copy": scores(inputs, list(inputs), references, kinds)}
    print(args.data)
    print("| kind | n | ROUGE-L rules | ROUGE-L copy | EM rules | EM copy |\n|---|---:|---:|---:|---:|---:|")
    for kind, m in result["rules"].items():
        c = result["copy"][kind]
        print(f"| {kind} | {m['n']} | {m['rougeL']:.4f} | {c['rougeL']:.4f} | {m['exact_match']:.4f} | "
              f"{c['exact_match']:.4f} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
