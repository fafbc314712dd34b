"""The README's copies of ``outputs/results.md`` and ``outputs/ablations.md``, kept current by ``qrewrite results``.

Each copy sits between two HTML comments, which render as nothing on GitHub::

    <!-- begin outputs/results.md -->
    | run | model | ... |
    <!-- end outputs/results.md -->

Between them goes the file's table (and, for ``ablations.md``, its target lines); everything outside the markers
is the README's own text and is never touched.
"""
from __future__ import annotations

import os
from pathlib import Path

from qrewrite.eval.ablations import TABLE_NAME as ABLATIONS_NAME
from qrewrite.files import atomic_write_text

RESULTS_NAME = "results.md"


def begin_marker(name: str) -> str:
    return f"<!-- begin outputs/{name} -->"


def end_marker(name: str) -> str:
    return f"<!-- end outputs/{name} -->"


def _block(markdown: str, keep_bullets: bool) -> list[str]:
    """The lines of a generated file that the README shows: its tables (with the "### " headings between them,
    results.md's groups), and its "- " lines when asked."""
    lines = markdown.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(("|", "### "))]
    ends = [i for i, line in enumerate(lines) if line.startswith("|")]
    tables = lines[starts[0]:ends[-1] + 1] if ends else []
    bullets = [line for line in lines if keep_bullets and line.startswith("- ")]
    return tables + ([""] + bullets if bullets else [])


def _replace_between(lines: list[str], name: str, block: list[str], readme: Path) -> list[str]:
    begin, end = begin_marker(name), end_marker(name)
    starts = [i for i, line in enumerate(lines) if line.strip() == begin]
    ends = [i for i, line in enumerate(lines) if line.strip() == end]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise ValueError(f"{readme}: expected one '{begin}' line followed by one '{end}' line "
                         f"(found {len(starts)} and {len(ends)}); add them around the table to keep current")
    return lines[:starts[0] + 1] + block + lines[ends[0]:]


def readme_with_tables(readme_text: str, outputs_dir, readme: Path | str = "README.md") -> str:
    """``readme_text`` with every marked block replaced by the current generated file under ``outputs_dir``.
    A generated file that does not exist (no ablation spec, say) leaves the README's block as it is."""
    root = Path(outputs_dir)
    lines = readme_text.splitlines()
    for name, keep_bullets in ((RESULTS_NAME, False), (ABLATIONS_NAME, True)):
        if (root / name).is_file():
            block = _block((root / name).read_text(encoding="utf-8"), keep_bullets)
            lines = _replace_between(lines, name, block, Path(readme))
    return "\n".join(lines) + "\n"


def sync_readme(readme, outputs_dir) -> bool:
    """Rewrite ``readme``'s marked tables from ``outputs_dir`` (atomically); True when its text changed."""
    path = Path(readme)
    old = path.read_text(encoding="utf-8")
    new = readme_with_tables(old, outputs_dir, path)
    if new != old:
        atomic_write_text(path, new)
    return new != old


def update_readme(outputs_dir, readme=None) -> str | None:
    """What ``qrewrite results`` does to a README, as one line to print (None: there is none to update).
    ``readme=None``: the README beside the outputs directory, skipped when absent (``--outputs outputs/quickstart``
    touches none) and only reported when unmarked; a README named explicitly that is missing or unmarked is a
    ValueError."""
    path = Path(readme or os.path.relpath(Path(outputs_dir).resolve().parent / "README.md"))
    if not path.is_file():
        if readme:
            raise ValueError(f"--readme {readme}: no such file")
        return None
    try:
        changed = sync_readme(path, outputs_dir)
    except ValueError as e:
        if readme:
            raise
        return f"not updated: {e}"
    return f"{'updated' if changed else 'unchanged'}: {path}"
