"""``qrewrite rewrite``: rewrite questions from arguments, a file, or interactively."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from qrewrite.data.records import FORMATS_HELP
from qrewrite.errors import ConfigError, DataError
from qrewrite.files import check_writable, output_target, partial_path
from qrewrite.flags import add_options, from_args, option
from qrewrite.infer.options import RewriteOptions


@dataclass(kw_only=True, frozen=True)
class RewriteCommand(RewriteOptions):
    questions: list[str] = option(help="questions to rewrite", positional=True, default_factory=list)
    input: str | None = option(None, f"file of questions: {FORMATS_HELP}")
    output: str | None = option(None, "JSONL output for --input: id, input, prediction per line, input order")
    no_input: bool = option(False, "leave the input out of --output: id and prediction only (blind test inputs must "
                                   "not be copied into the project)", action="store_true")
    input_field: str | None = option(None, "input column/field name in --input")
    strict: bool = option(False, "fail on a bad record in --input instead of skipping", action="store_true")
    interactive: bool = option(False, "read questions line by line until EOF", action="store_true")


def add_rewrite(sub):
    p = sub.add_parser("rewrite", help="rewrite questions: arguments, a file, or interactively",
                       description="Print the clean question for each QUESTION, rewrite --input FILE into "
                                   "--output JSONL (resumable), or read questions from stdin with --interactive.")
    add_options(p, RewriteCommand)
    p.set_defaults(func=cmd_rewrite)


def cmd_rewrite(args) -> int:
    opts = from_args(RewriteCommand, args)
    if bool(args.input) != bool(args.output):
        raise ConfigError("--input and --output go together")
    if args.no_input and not args.output:
        raise ConfigError("--no-input shapes the --output file; give --input and --output")
    if not (args.questions or args.input or args.interactive):
        raise ConfigError("give questions as arguments, --input/--output, or --interactive")
    from qrewrite.data.records import question_problem
    for n, question in enumerate(args.questions, 1):
        if (problem := question_problem(question)) is not None:
            raise DataError(f"question {n} (an argument): {problem[1]}")
    records = output = None
    if args.input:
        from qrewrite.data.records import read_records
        output = output_target(args.output, inputs=[args.input], what="--output")  # before any work
        output_target(partial_path(output), inputs=[args.input], what="--output's partial file")
        check_writable(output.parent)
        records, report = read_records(args.input, input_field=args.input_field, require_target=False,
                                       strict=args.strict)
        if any(report.skipped.values()):
            print(report.summary(), file=sys.stderr)
    from qrewrite.infer.generate import rewrite_file  # torch: only once the input is known to be usable
    from qrewrite.infer.rewriter import load_rewriter

    rewriter = load_rewriter(opts.model, **opts.loading())
    for text in rewriter.rewrite(args.questions):
        print(text)
    if records is not None:
        from qrewrite.progress import progress_bar
        with progress_bar(len(records)) as bar:
            out = rewrite_file(rewriter, records, output, progress=bar.update, with_input=not args.no_input)
        through = f" (through the link {args.output})" if Path(args.output).is_symlink() else ""
        print(f"written: {out}{through} ({len(records)} questions)", file=sys.stderr)
    if args.interactive:
        _interactive(rewriter, question_problem)
    return 0


def _interactive(rewriter, question_problem) -> None:
    if sys.stdin.isatty():
        print("Type a question and press Enter (Ctrl-D to quit).", file=sys.stderr)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            if (problem := question_problem(line.strip())) is not None:
                print(f"error: {problem[1]}", file=sys.stderr, flush=True)
                continue
            print(rewriter.rewrite_batch([line.strip()])[0], flush=True)
    except UnicodeDecodeError as e:
        raise DataError(f"stdin is not UTF-8 text (byte 0x{e.object[e.start]:02x}); send UTF-8") from None
