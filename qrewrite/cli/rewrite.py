"""``qrewrite rewrite``: rewrite questions from arguments, a file, or interactively."""

from __future__ import annotations

import sys
from pathlib import Path

from qrewrite.cli.options import (
    add_decoding_option,
    add_engine_options,
    add_generation_options,
    add_model_option,
    decoding_from_args,
    engine_from_args,
)
from qrewrite.errors import ConfigError
from qrewrite.files import check_writable


def add_rewrite(sub):
    p = sub.add_parser("rewrite", help="rewrite questions: arguments, a file, or interactively",
                       description="Print the clean question for each QUESTION, rewrite --input FILE into "
                                   "--output JSONL (resumable), or read questions from stdin with --interactive.")
    add_model_option(p)
    p.add_argument("questions", nargs="*", help="questions to rewrite")
    p.add_argument("--input", help="JSON / JSONL / CSV / raw Disfl-QA file of questions")
    p.add_argument("--output", help="JSONL output for --input: id, input, prediction per line, input order")
    p.add_argument("--no-input", action="store_true",
                   help="leave the input out of --output: id and prediction only (blind test inputs must not be "
                        "copied into the project)")
    p.add_argument("--input-field", help="input column/field name in --input")
    p.add_argument("--strict", action="store_true", help="fail on a bad record in --input instead of skipping")
    p.add_argument("--interactive", action="store_true", help="read questions line by line until EOF")
    add_generation_options(p)
    add_decoding_option(p)
    add_engine_options(p)
    p.set_defaults(func=cmd_rewrite)


def cmd_rewrite(args) -> int:
    if bool(args.input) != bool(args.output):
        raise ConfigError("--input and --output go together")
    if args.no_input and not args.output:
        raise ConfigError("--no-input shapes the --output file; give --input and --output")
    if not (args.questions or args.input or args.interactive):
        raise ConfigError("give questions as arguments, --input/--output, or --interactive")
    engine = engine_from_args(args)
    records = None
    if args.input:
        from qrewrite.data.records import read_records
        records, report = read_records(args.input, input_field=args.input_field, require_target=False,
                                       strict=args.strict)
        if any(report.skipped.values()):
            print(report.summary(), file=sys.stderr)
        check_writable(Path(args.output).parent)
    from qrewrite.infer.generate import rewrite_file  # torch: only once the input is known to be usable
    from qrewrite.infer.rewriter import load_rewriter

    rewriter = load_rewriter(args.model, precision=args.precision, trust_remote_code=args.trust_remote_code,
                             batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                             decoding=decoding_from_args(args), **engine)
    for text in rewriter.rewrite(args.questions):
        print(text)
    if records is not None:
        from qrewrite.progress import progress_bar
        with progress_bar(len(records)) as bar:
            out = rewrite_file(rewriter, records, args.output, progress=bar.update, with_input=not args.no_input)
        print(f"written: {out} ({len(records)} questions)", file=sys.stderr)
    if args.interactive:
        if sys.stdin.isatty():
            print("Type a question and press Enter (Ctrl-D to quit).", file=sys.stderr)
        for line in sys.stdin:
            if line.strip():
                print(rewriter.rewrite_batch([line.strip()])[0], flush=True)
    return 0
