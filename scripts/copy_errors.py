#!/usr/bin/env python
"""How often rewrites fail to copy: per evaluation, the share of predictions that

- **invent** a word: one found in neither the question nor the reference ("Abercynon" -> "Abercrombie");
- **lose a name**: leave out or change a capitalised word (after the first) that the question and the reference
  both have.

    python scripts/copy_errors.py outputs/RUN/topic outputs/OTHER/topic ... > outputs/copy_errors.md

Reads each directory's predictions.jsonl and metrics.json (run name, data label); prints a markdown table.
"""

import json
import re
import sys
from pathlib import Path

WORD = re.compile(r"[\w'-]+")


def words(text: str) -> set[str]:
    return {w.casefold().strip("'") for w in WORD.findall(text)}


def names(text: str) -> set[str]:
    return {w for w in WORD.findall(text)[1:] if w[0].isupper()}


def copy_errors(rows: list[dict]) -> dict:
    invented = lost = 0
    for r in rows:
        if words(r["prediction"]) - words(r["input"]) - words(r["reference"]):
            invented += 1
        if (names(r["reference"]) & names(r["input"])) - names(r["prediction"]):
            lost += 1
    return {"n": len(rows), "invented": invented / len(rows), "lost_name": lost / len(rows)}


def main(dirs: list[str]) -> int:
    print("| run | data | questions | invent a word | lose a name | EM |")
    print("|---|---|---:|---:|---:|---:|")
    for d in map(Path, dirs):
        rows = [json.loads(line) for line in (d / "predictions.jsonl").open(encoding="utf-8")]
        meta = json.loads((d / "metrics.json").read_text(encoding="utf-8"))
        e = copy_errors(rows)
        print(f"| {meta['run']['name']} | {meta['run']['data']} | {e['n']} | {e['invented']:.1%} | "
              f"{e['lost_name']:.1%} | {meta['metrics']['exact_match']:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
