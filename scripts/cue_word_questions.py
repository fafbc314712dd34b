"""Write the clean questions that hold a word correction cues are made of ("or", "not", "no", "rather", ...), used as
a plain word: training pairs left clean from them teach a rewriter that such words are not always cues.

    python scripts/cue_word_questions.py ../shared/data/squad-train/questions.jsonl dataset/extra/squad-cue-words.jsonl
    python scripts/cue_word_questions.py ../shared/data/squad-train/questions.jsonl \\
        dataset/extra/squad-cues-others1k.jsonl --others 1000     # + 1,000 questions without one (seeded draw)

The output is derived from its source and keeps its licence (SQuAD: CC BY-SA 4.0); it lies under dataset/, which
git ignores: never commit it. Its use: ``extra_questions`` in configs/topic/smollm2-full-synth-squad4k-cues.yaml
and configs/topic/smollm2-full-synth-squad-cues.yaml.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qrewrite.data.extra import draw_key, has_cue_word, read_questions  # noqa: E402
from qrewrite.files import atomic_write_text  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source", help="a .jsonl ({\"question\": ...} per line) or .txt file of clean questions")
    p.add_argument("out", help="the .jsonl file to write")
    p.add_argument("--others", type=int, default=0, metavar="N",
                   help="also write N questions without a cue word, drawn by a hash of --seed and their text "
                        "(independent of the source's order); default 0")
    p.add_argument("--seed", type=int, default=0, help="the draw of --others (default 0)")
    args = p.parse_args(argv)
    if args.others < 0:
        p.error(f"--others: expected a count >= 0, got {args.others}")
    questions, skipped = read_questions(args.source)
    with_cue = {q for q in questions if has_cue_word(q)}
    without = [q for q in questions if q not in with_cue]
    if args.others > len(without):
        p.error(f"--others {args.others}: {args.source} has only {len(without)} questions without a cue word")
    drawn = set(sorted(without, key=lambda q: draw_key(args.seed, q))[:args.others])
    kept = [q for q in questions if q in with_cue or q in drawn]  # the source's order
    atomic_write_text(args.out, "".join(json.dumps({"question": q}, ensure_ascii=False) + "\n" for q in kept))
    others = f" + {len(drawn)} others drawn with seed {args.seed}" if args.others else ""
    print(f"{len(with_cue)} of {len(questions)} questions hold a cue word{others} -> {args.out} "
          f"(skipped in the source: {skipped})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
