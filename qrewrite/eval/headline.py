"""``outputs/headline.md``: the README's first table, regenerated from the runs' ``metrics.json``.

Which rows it shows is declared in ``outputs/headline.yaml`` (written by hand); every figure of a project run comes
from the evaluations under ``outputs/`` (matched by run name and data label), its test figures from
``outputs/blind_scores.yaml`` (the committed blind predictions, scored elsewhere: the test references are not in the
repository), and the training time from the named training runs' ``train_time_s``::

    splits: {held-out topics: "topic-disjoint valid", Disfl-QA dev: "disfl-qa dev"}
    typo_splits: {held-out topics: "topic-disjoint valid (typo)"}
    rows:
      - {run: my-soup-copy1, label: "**my-soup**, `--copy-bonus 1`", params: 135M}
      - {label: "a published model", params: 139M, test: {rougeL: "~0.943", exact_match: "67.5%"}}  # quoted as is
    training: {runs: [ingredient-a, ingredient-b], hardware: "2 CPU cores"}

A figure with a 95 % interval in its metrics (``rougeL_ci``, ``exact_match_ci``: ``[low, high]``) is printed with
it, "0.944 [0.938, 0.950]"; one that was not measured is an em dash.
"""

from __future__ import annotations

from pathlib import Path

from qrewrite.eval.ablations import load_yaml_mapping
from qrewrite.eval.collect import MISSING, _cell, _fmt, _is_number, collect_runs
from qrewrite.files import atomic_write_text

SPEC_NAME = "headline.yaml"
SCORES_NAME = "blind_scores.yaml"
TABLE_NAME = "headline.md"
TEST_SPLITS = {False: "test", True: "test_typo"}  # blind_scores.yaml's split per table (typo'd or not)


def load_headline_spec(path: str | Path) -> dict:
    """The headline spec, checked: split labels, rows that each name a run or quote their figures, training runs."""
    path = Path(path)
    spec = load_yaml_mapping(path, (("splits", dict), ("rows", list), ("training", dict)))
    for n, row in enumerate(spec["rows"], 1):
        if not isinstance(row, dict) or not isinstance(row.get("label"), str) or not row["label"].strip():
            raise ValueError(f"{path}: row {n} needs a 'label'")
        if not isinstance(row.get("run"), str) and not isinstance(row.get("test"), dict):
            raise ValueError(f"{path}: row {n} needs 'run' (a run name) or quoted 'test' figures")
    runs = spec["training"].get("runs")
    if not isinstance(runs, list) or not runs or not all(isinstance(r, str) for r in runs):
        raise ValueError(f"{path}: field 'training.runs' must be a list of run names")
    return spec


def load_blind_scores(path: str | Path) -> dict:
    """The independent test scores of committed blind predictions: run -> split -> {rougeL, exact_match}."""
    path = Path(path)
    doc = load_yaml_mapping(path, (("source", str), ("command", str), ("runs", dict)))
    for run, splits in doc["runs"].items():
        for split, scores in (splits or {}).items():
            if split not in TEST_SPLITS.values() or not isinstance(scores, dict) or not all(
                    _is_number(scores.get(k)) for k in ("rougeL", "exact_match")):
                raise ValueError(f"{path}: runs.{run}.{split} must be test or test_typo with numbers "
                                 "rougeL and exact_match")
    return doc


def figure(metrics: dict | None, key: str, kind: str) -> str:
    """One cell: the figure, with its interval when ``metrics`` has ``<key>_ci``; an em dash when absent."""
    if not metrics or not _is_number(metrics.get(key)):
        return MISSING
    def show(v):  # "rouge4": the four decimals the blind test's scores were reported with
        return f"{v:.4f}" if kind == "rouge4" else _fmt(v, kind)

    text = show(metrics[key])
    ci = metrics.get(f"{key}_ci")
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_is_number(v) for v in ci):
        low, high = (show(v).rstrip("%") for v in ci)
        text += f" [{low}, {high}]"
    return text


def _test_cells(row: dict, scores: dict, typo: bool) -> list[str]:
    quoted = row.get("test_typo" if typo else "test")
    if isinstance(quoted, dict):  # a published figure, quoted as written
        return [_cell(quoted.get("rougeL", MISSING)), _cell(quoted.get("exact_match", MISSING))]
    measured = (scores.get(row.get("run")) or {}).get(TEST_SPLITS[typo])
    return [figure(measured, "rougeL", "rouge4"), figure(measured, "exact_match", "pct")]


def _table(spec: dict, runs: dict, scores: dict, typo: bool) -> list[str]:
    splits = spec.get("typo_splits", {}) if typo else spec["splits"]
    header = ["typo'd questions" if typo else "model", *([] if typo else ["params"])]
    for title in [*splits, "Disfl-QA test"]:
        header += [f"{title} ROUGE-L", f"{title} EM"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header)))
             + "|"]
    for row in spec["rows"]:
        if typo and not row.get("typo", True):
            continue
        cells = [row["label"], *([] if typo else [_cell(row.get("params", MISSING))])]
        for label in splits.values():
            e = runs.get((row.get("run"), label))
            cells += [figure(e and e["metrics"], "rougeL", "rouge"), figure(e and e["metrics"], "exact_match", "pct")]
        lines.append("| " + " | ".join(cells + _test_cells(row, scores, typo)) + " |")
    return lines


def _training_line(spec: dict, runs: dict, recommended: str | None) -> str:
    """How long the recommended model took to make: its training runs' train_time_s summed, plus the soup's own."""
    names, total = spec["training"]["runs"], 0.0
    for name in names:
        times = {r["run"].get("train_time_s") for (n, _), r in runs.items() if n == name}
        if len(times) != 1 or not _is_number(next(iter(times))):
            raise ValueError(f"{SPEC_NAME}: training run {name!r} needs one train_time_s in its metrics.json, "
                             f"found {sorted(map(str, times))}")
        total += next(iter(times))
    own = next((r["run"].get("train_time_s") for (n, _), r in runs.items() if n == recommended), None)
    line = (f"- Training: {len(names)} runs ({', '.join(f'`{n}`' for n in names)}), "
            f"{_fmt(total, 'time')} in all on {spec['training'].get('hardware', 'the machine of their runs')}")
    return line + (f"; averaging their weights took {_fmt(own, 'time')}." if _is_number(own) else ".")


def headline_table(spec: dict, scores: dict, outputs_dir) -> str:
    """The markdown of ``headline.md``: the clean table, the typo'd table, then the notes."""
    runs = {(r["run"]["name"], r["run"]["data"]): r for r in collect_runs(outputs_dir)}
    first = spec["rows"][0].get("run")
    test = scores.get("command", "").replace("RUN", first).replace("SPLIT", "test")
    lines = [f"_Generated by `python -m qrewrite results` from `{SPEC_NAME}`, `{SCORES_NAME}` and the runs' "
             "metrics.json; do not edit by hand._", "",
             *_table(spec, runs, scores.get("runs", {}), typo=False), "",
             *_table(spec, runs, scores.get("runs", {}), typo=True), "",
             *(f"- {note}" for note in spec.get("notes", [])),
             f"- Disfl-QA test: {scores.get('source', MISSING)}; {scores.get('scoring', '')}. "
             f"Reproduce with the official test file: `{test}`.",
             _training_line(spec, runs, first), ""]
    return "\n".join(lines)


def write_headline(outputs_dir="outputs") -> Path | None:
    """Regenerate ``outputs_dir/headline.md`` from ``headline.yaml`` (and ``blind_scores.yaml`` when present);
    None when there is no spec."""
    root = Path(outputs_dir)
    if not (root / SPEC_NAME).is_file():
        return None
    scores = load_blind_scores(root / SCORES_NAME) if (root / SCORES_NAME).is_file() else {}
    return atomic_write_text(root / TABLE_NAME, headline_table(load_headline_spec(root / SPEC_NAME), scores, root))
