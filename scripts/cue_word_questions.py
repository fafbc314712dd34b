"""Write the clean questions that hold a word correction cues are made of ("or", "not", "no", "rather", ...), used as
a plain word: training pairs left clean from them teach a rewriter that such words are not always cues.

    python scripts/cue_word_questions.py ../shared/data/squad-train/questions.jsonl dataset/extra/squad-cue-words.jsonl

The output is derived from its source and keeps its licence (SQuAD: CC BY-SA 4.0); it lies under dataset/, which
git ignores: never commit it. Its use: ``extra_questions`` in configs/topic/smollm2-full-synth-squad4k-cues.yaml.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qrewrite.data.extra import CUE_WORDS, normalise, read_questions  # noqa: E402
from qrewrite.files import atomic_write_text  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source", help="a .jsonl ({\"question\": ...} per line) or .txt file of clean questions")
    p.add_argument("out", help="the .jsonl file to write")
    args = p.parse_args(argv)
    questions, skipped = read_questions(args.source)
    kept = [q for q in questions if CUE_WORDS & set(normalise(q).split())]
    atomic_write_text(args.out, "".join(json.dumps({"question": q}, ensure_ascii=False) + "\n" for q in kept))
    print(f"{len(kept)} of {len(questions)} questions hold a cue word -> {args.out} (skipped in the source: {skipped})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
