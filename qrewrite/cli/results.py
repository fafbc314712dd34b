"""``qrewrite results``: regenerate outputs/results.md, ablations.md, headline.md, the plots and the README tables."""

from __future__ import annotations

from pathlib import Path

from qrewrite.errors import DataError


def add_results(sub):
    p = sub.add_parser("results", help="regenerate outputs/results.md, ablations.md, headline.md and the plots from "
                                       "metrics.json files, and the README's copies of the tables")
    p.add_argument("--outputs", default="outputs", help="outputs directory (default: outputs)")
    readme = p.add_mutually_exclusive_group()
    readme.add_argument("--readme", help="README whose marked tables to update (default: README.md beside the "
                                         "outputs directory, when there is one; see qrewrite/eval/readme_tables.py)")
    readme.add_argument("--no-readme", action="store_true", help="leave every README as it is")
    p.set_defaults(func=cmd_results)


def cmd_results(args) -> int:
    from qrewrite.eval.ablations import TABLE_NAME
    from qrewrite.eval.headline import TABLE_NAME as HEADLINE
    from qrewrite.eval.readme_tables import update_readme
    from qrewrite.eval.results import write_results
    try:  # a malformed metrics.json or ablations.yaml: one line naming the file and field
        print(f"written: {write_results(args.outputs)}")
    except ValueError as e:
        raise DataError(str(e)) from None
    for name in (TABLE_NAME, HEADLINE):
        if (Path(args.outputs) / name).is_file():
            print(f"written: {Path(args.outputs) / name}")
    if not args.no_readme:
        try:
            done = update_readme(args.outputs, args.readme)
        except ValueError as e:
            raise DataError(str(e)) from None
        if done:
            print(done)
    return 0
