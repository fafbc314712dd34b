"""Add 95 % bootstrap intervals to every committed metrics.json that lacks them, from its own predictions.jsonl.

    python scripts/add_intervals.py [outputs]

Run from the repository root with the code committed: each file records this command and the commit
(qrewrite.eval.intervals). Then `python -m qrewrite results` regenerates the tables and plots that show them.
"""

import subprocess
import sys

from qrewrite.eval.intervals import add_intervals
from qrewrite.files import git_commit


def main(outputs: str = "outputs") -> int:
    commit = git_commit()
    if commit.endswith("+dirty") or commit == "unknown":
        print(f"error: commit the code first (git commit is {commit})", file=sys.stderr)
        return 2
    tracked = subprocess.run(["git", "ls-files", "--", f"{outputs}/**/metrics.json", f"{outputs}/*/metrics.json"],
                             capture_output=True, text=True, check=True).stdout.split()
    try:
        written = add_intervals(sorted(set(tracked)), {"added_by": "python scripts/add_intervals.py",
                                                       "git_commit": commit})
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"intervals added to {len(written)} of {len(set(tracked))} metrics.json files")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
