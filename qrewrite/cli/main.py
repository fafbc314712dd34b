"""``qrewrite <command>`` (or ``python -m qrewrite <command>``): the commands of :data:`COMMANDS`.

Thin: each command parses its options and calls one function of the package. Errors the user can fix
(bad data, bad config, unusable model path) print one clear message and exit with status 2.
"""

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from qrewrite.cli.average import add_average
from qrewrite.cli.evaluate import add_evaluate
from qrewrite.cli.export import add_export
from qrewrite.cli.prepare import add_prepare
from qrewrite.cli.push import add_push
from qrewrite.cli.quickstart import add_quickstart
from qrewrite.cli.results import add_results
from qrewrite.cli.rewrite import add_rewrite
from qrewrite.cli.score import add_score
from qrewrite.cli.serve import add_serve
from qrewrite.cli.train import add_train
from qrewrite.errors import Interrupted, QrewriteError
from qrewrite.progress import interactive

COMMANDS = (add_prepare, add_train, add_average, add_evaluate, add_rewrite, add_push, add_results, add_quickstart,
            add_serve, add_score, add_export)


def build_parser() -> argparse.ArgumentParser:
    # usage lines name the command as it was run: the `qrewrite` script, or `python -m qrewrite`
    prog = "qrewrite" if Path(sys.argv[0]).name == "qrewrite" else "python -m qrewrite"
    parser = argparse.ArgumentParser(prog=prog)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    parser.description = ("Fine-tune small causal LMs to rewrite messy questions into the clean questions meant; "
                          f"evaluate and serve them. Commands: {', '.join(sub.choices)}.")
    return parser


def run_command(func, args) -> int:
    """Run a command; errors the user can fix become one 'error: ...' line and exit status 2. SIGTERM stops a
    command as Ctrl-C does (each keeps what it can: a checkpoint, a resumable .partial, the old outputs), with
    one 'interrupted' line and exit status 143 (130 for Ctrl-C)."""
    if not interactive():
        # a log file: no redrawn bars from the libraries (transformers' "Loading weights" / "Writing model
        # shards", hub downloads, the GGUF conversion's plain tqdm); ours print lines there (qrewrite.progress)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return func(args)
    except QrewriteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"interrupted: {e}" if str(e) else "interrupted", file=sys.stderr)
        return getattr(e, "exit_code", 130)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _terminated(signum, frame):
    raise Interrupted("", "SIGTERM")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)
