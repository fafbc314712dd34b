"""``outputs/ablations.md``: what each change bought, regenerated from the runs' ``metrics.json``.

The table's rows are declared in ``outputs/ablations.yaml`` (written by hand: which evaluation is the reference,
which lines compare against it and what each one changed); every number comes from the evaluations under
``outputs/`` (:func:`qrewrite.eval.results.collect_runs`), matched by run name and data label::

    reference: smollm2-full              # run name (metrics.json run.name)
    splits: {clean: "disfl-qa dev", typo: "disfl-qa dev (typo)"}
    targets: {clean: {rougeL: 0.96, exact_match: 0.77}, typo: {rougeL: 0.88, exact_match: 0.40}}
    notes: ["Runs trained on all of train have no topic-disjoint evaluation."]   # optional, under the table
    clean_split: "topic-disjoint valid (clean)"  # optional: the references as inputs -> a "clean kept" column
    lines:
      - {run: smollm2-full-typo, change: "+2 typo'd copies, 1000 steps"}
      - {run: topic-baseline, change: "trained without the held-out topics"}
      - {run: topic-names, change: "+ name-swapped copies", against: topic-baseline}  # deltas against that line

A line whose run has no evaluation yet says so instead of a number; nothing is left out silently.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from qrewrite.eval.bootstrap import RESAMPLES, SEED, excludes_zero, paired_intervals
from qrewrite.eval.collect import MISSING, _cell, _fmt, _is_number, collect_runs, train_time_cell
from qrewrite.files import atomic_write_text, read_jsonl

SPEC_NAME = "ablations.yaml"
TABLE_NAME = "ablations.md"
METRICS = (("rougeL", "ROUGE-L", "rouge"), ("exact_match", "EM", "pct"))


def load_yaml_mapping(path: Path, needs: tuple[tuple[str, type], ...]) -> dict:
    """A hand-written YAML spec under outputs/: a mapping holding each of ``needs`` (key, type); else ValueError
    naming the file and the field."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a mapping with {', '.join(key for key, _ in needs)}")
    for key, kind in needs:
        if not isinstance(doc.get(key), kind):
            raise ValueError(f"{path}: field '{key}' must be a {kind.__name__}")
    return doc


def load_spec(path: str | Path) -> dict:
    """The ablation spec, checked: a reference run, split labels, optional targets and a list of lines."""
    path = Path(path)
    spec = load_yaml_mapping(path, (("reference", str), ("splits", dict), ("lines", list)))
    for n, line in enumerate(spec["lines"], 1):
        if not isinstance(line, dict) or not isinstance(line.get("run"), str) or not line.get("change"):
            raise ValueError(f"{path}: line {n} needs 'run' (a run name) and 'change' (what it changes)")
        if "against" in line and line["against"] not in [x["run"] for x in spec["lines"][:n - 1]]:
            raise ValueError(f"{path}: line {n}: 'against' must name the run of an earlier line, "
                             f"got {line['against']!r}")
    notes = spec.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) and n.strip() for n in notes):
        raise ValueError(f"{path}: field 'notes' must be a list of sentences")
    earlier = spec.get("previously_recommended", [])
    if not isinstance(earlier, list) or not all(isinstance(n, str) and n for n in earlier):
        raise ValueError(f"{path}: field 'previously_recommended' must be a list of run names")
    for key in ("recommended", "recommended_decoding"):
        if key in spec and not (isinstance(spec[key], str) and spec[key]):
            raise ValueError(f"{path}: field '{key}' must be a run name (metrics.json run.name)")
    if "clean_split" in spec and not (isinstance(spec["clean_split"], str) and spec["clean_split"]):
        raise ValueError(f"{path}: field 'clean_split' must be a data label (metrics.json run.data)")
    for split, targets in (spec.get("targets") or {}).items():
        if split not in spec["splits"] or not all(_is_number(v) for v in targets.values()):
            raise ValueError(f"{path}: targets.{split} must name a split of 'splits' and hold numbers")
    return spec


def _by_run(outputs_dir) -> dict[tuple[str, str], dict]:
    return {(r["run"]["name"], r["run"]["data"]): r for r in collect_runs(outputs_dir)}


class _Pairs:
    """Paired differences between two evaluations, from their committed ``predictions.jsonl`` (matched by id)."""

    def __init__(self, root: Path):
        self.root, self.rows = root, {}

    def _scores(self, evaluation: dict) -> dict | None:
        path = (self.root / evaluation["path"]).parent / "predictions.jsonl"
        if path not in self.rows:
            self.rows[path] = {r["id"]: (r["rougeL"], r["exact_match"]) for r in read_jsonl(path)} \
                if path.is_file() else None
        return self.rows[path]

    def difference(self, evaluation: dict, reference: dict) -> dict | None:
        """:func:`qrewrite.eval.bootstrap.paired_intervals` of ``evaluation`` minus ``reference``; None unless
        both have per-question scores of the same questions."""
        mine, theirs = self._scores(evaluation), self._scores(reference)
        if not mine or not theirs or mine.keys() != theirs.keys():
            return None
        ids = list(mine)
        return paired_intervals([mine[i][0] for i in ids], [mine[i][1] for i in ids],
                                [theirs[i][0] for i in ids], [theirs[i][1] for i in ids])


def _signed(d: float, kind: str) -> str:
    return f"{d:+.4f}" if kind == "rouge" else f"{100 * d:+.1f}"


def _delta(key: str, value, reference, kind: str, paired: dict | None) -> str:
    if not (_is_number(value) and _is_number(reference)):
        return ""
    if paired is None:
        return f" ({_signed(value - reference, kind)})"
    low, high = paired[f"{key}_diff_ci"]
    diff = _signed(paired[f"{key}_diff"], kind)
    return f" ({f'**{diff}**' if excludes_zero(low, high) else diff} [{_signed(low, kind)}, {_signed(high, kind)}])"


def _metric_cells(evaluation: dict | None, reference: dict | None, pairs: _Pairs) -> list[str]:
    if evaluation is None:
        return ["not evaluated"] * len(METRICS)
    paired = pairs.difference(evaluation, reference) if reference else None
    cells = []
    for key, _, kind in METRICS:
        value = evaluation["metrics"].get(key)
        ref_value = reference["metrics"].get(key) if reference else None
        cells.append(_fmt(value, kind) + _delta(key, value, ref_value, kind, paired))
    return cells


def _clean_cell(evaluation: dict | None) -> str:
    """Questions that needed nothing, returned unchanged, and how many rewrites lost a negation word."""
    if evaluation is None:
        return "not evaluated"
    m = evaluation["metrics"]
    kept = 1 - m["changed_input"] if _is_number(m.get("changed_input")) else None
    lost = m.get("negation_dropped")
    lost_n = f", {round(lost * m['n'])} lost a negation" if _is_number(lost) and _is_number(m.get("n")) else ""
    return _fmt(kept, "pct") + lost_n


def _intro(ref_name: str, header: list[str]) -> list[str]:
    return [f"_Generated by `python -m qrewrite results` from `{SPEC_NAME}` and the runs' metrics.json and "
            "predictions.jsonl; do not edit by hand._", "",
            f"Reference: **{ref_name}**. Differences (in brackets) are against it, or against the line named in the "
            "change (\"vs line N\"): ROUGE-L in points of the score, EM in percentage points, each with its 95 % "
            "paired bootstrap interval over the questions both evaluations share "
            f"({RESAMPLES:,} resamples, seed {SEED}). A difference in **bold** has an interval that excludes zero; "
            "the others cannot be told from noise on these questions. A soup's train time is its ingredients' "
            "training added up.", "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join("---" if i < 3 else "---:" for i in range(len(header))) + "|"]


def ablation_table(spec: dict, outputs_dir) -> str:
    """The markdown of ``ablations.md`` for ``spec`` over the evaluations under ``outputs_dir``."""
    runs, pairs = _by_run(outputs_dir), _Pairs(Path(outputs_dir))
    splits, ref_name = spec["splits"], spec["reference"]
    ref = {s: runs.get((ref_name, label)) for s, label in splits.items()}
    clean_label = spec.get("clean_split")
    header = ["line", "run", "change", "steps"] + [f"{s} {title}" for s in splits for _, title, _ in METRICS] + \
        (["clean kept"] if clean_label else []) + ["train time"]
    lines = _intro(ref_name, header)
    line_of = {line["run"]: n for n, line in enumerate(spec["lines"], 1)}
    for n, line in enumerate([{"run": ref_name, "change": "reference"}] + spec["lines"]):
        evals = {s: runs.get((line["run"], label)) for s, label in splits.items()}
        change = line["change"]
        against = ref
        if "against" in line:
            against = {s: runs.get((line["against"], label)) for s, label in splits.items()}
            change = f"vs line {line_of[line['against']]}: {change}"
        cells = [str(n) if n else "ref", _cell(line["run"]), _cell(change)]
        first = next((e for e in evals.values() if e), None)
        cells.append(_fmt(first["run"].get("steps"), "int") if first else MISSING)
        for s in splits:
            cells += _metric_cells(evals[s], against[s] if n else None, pairs)
        if clean_label:
            cells.append(_clean_cell(runs.get((line["run"], clean_label))))
        cells.append(train_time_cell(first, list(runs.values())) if first else MISSING)
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *(f"- {note}" for note in spec.get("notes", [])), *([""] if spec.get("notes") else []),
              *_target_lines(spec, runs), ""]
    return "\n".join(lines)


def _target_lines(spec: dict, runs: dict) -> list[str]:
    name, targets = spec.get("recommended"), spec.get("targets") or {}
    if not name or not targets:
        return []
    out = [f"Targets for the recommended run **{name}**:", ""]
    for split, wanted in targets.items():
        e = runs.get((name, spec["splits"][split]))
        for key, title, kind in METRICS:
            if key not in wanted:
                continue
            got = e["metrics"].get(key) if e else None
            verdict = "not evaluated" if got is None else "met" if got >= wanted[key] else "**not met**"
            out.append(f"- {split} {title} >= {_fmt(wanted[key], kind)}: {_fmt(got, kind)}, {verdict}")
    return out


def write_ablations(outputs_dir="outputs") -> Path | None:
    """Regenerate ``outputs_dir/ablations.md`` from ``outputs_dir/ablations.yaml``; None when there is no spec."""
    root = Path(outputs_dir)
    if not (root / SPEC_NAME).is_file():
        return None
    return atomic_write_text(root / TABLE_NAME, ablation_table(load_spec(root / SPEC_NAME), root))
