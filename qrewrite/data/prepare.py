"""Turn raw question-rewriting data into the canonical splits in ``dataset/``.

:func:`prepare_data` reads raw files (with :mod:`qrewrite.data.records`, which checks and cleans every record),
removes duplicate pairs and train/evaluation leaks, splits off validation when there is none, and writes
``train.json`` / ``valid.json`` (/ ``test.json``), typo'd evaluation variants and ``prepare_report.json``;
it reads and checks everything before it writes anything. Reading a file is :mod:`qrewrite.data.records`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from qrewrite import __version__
from qrewrite.data.records import FORMATS_HELP, SUFFIXES, DataReport, read_records
from qrewrite.data.topics import seen_name_share, topic_split
from qrewrite.data.typos import typo_variant
from qrewrite.errors import DataError
from qrewrite.files import (
    atomic_write_bytes,
    atomic_write_text,
    check_writable,
    file_fingerprint,
    file_sha256,
    output_dir_targets,
)
from qrewrite.flags import open_fraction, option, positive_int, probability

__all__ = ["prepare_data", "download_disfl_qa", "DISFL_QA_URL", "DISFL_QA_ENV"]

DISFL_QA_URL = "https://raw.githubusercontent.com/google-research-datasets/disfl-qa/main/{name}.json"
# The raw Disfl-QA directory where a command is not told (quickstart --full, scripts/rules_baseline.py); the files
# are not part of the project: `prepare --download` fetches them.
DISFL_QA_ENV = "QREWRITE_DISFL_QA"
# File names prepare_data looks for inside a source directory, in order.
_SPLIT_NAMES = {"train": ("train",), "valid": ("valid", "dev", "validation"), "test": ("test",)}
# Outputs prepare_data may write; the ones a run does not write are removed so none is left stale.
_OUTPUT_NAMES = ("train.json", "valid.json", "valid_dev.json", "test.json", "valid_typo.json", "valid_dev_typo.json",
                 "test_typo.json", "valid_clean.json", "valid_dev_clean.json", "test_clean.json")
VALID_SPLITS = ("auto", "topic")
# The evaluation splits, in the order they are written; valid_dev is the given validation file when
# valid_split="topic" holds out topics of train as valid.
_EVAL_SPLITS = ("valid", "valid_dev", "test")


def _match_key(s: str) -> str:
    """What two texts must share to count as the same question for leak checks: case and spacing ignored."""
    return " ".join(s.casefold().split())


def download_disfl_qa(directory, *, names=("train", "dev", "test"), timeout: float = 60) -> list[Path]:
    """Download the official Disfl-QA files into ``directory`` (each checked to be JSON, written atomically)."""
    directory = Path(directory)
    paths = []
    for name in names:
        url = DISFL_QA_URL.format(name=name)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                data = resp.read()
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", None) or e
            raise DataError(
                f"could not download {url}: {reason}. Without internet access, copy the Disfl-QA files "
                f"(train.json, dev.json, test.json) into {directory} by hand, or point the source at them"
            ) from None
        try:
            json.loads(data.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"downloaded {url} is not a JSON file ({e}); nothing was written") from None
        paths.append(atomic_write_bytes(directory / f"{name}.json", data))
    return paths


def _find(directory: Path, split: str) -> Path | None:
    found = [directory / f"{n}{e}" for n in _SPLIT_NAMES[split] for e in SUFFIXES if (directory / f"{n}{e}").is_file()]
    if len(found) > 1:
        raise DataError(f"{directory}: more than one {split} file ({', '.join(p.name for p in found)}); "
                        f"pass the file you mean explicitly")
    return found[0] if found else None


def _split_off(records: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Seeded split; records with the same target go to the same side, so the split itself makes no leak."""
    if len(records) < 2:
        raise DataError("cannot split off a validation set from fewer than 2 records; pass a validation file")
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault(_match_key(r["target"]), []).append(i)
    order = list(groups)
    random.Random(seed).shuffle(order)
    n_valid = min(len(records) - 1, max(1, round(len(records) * fraction)))
    valid_idx: set[int] = set()
    for k in order:
        if len(valid_idx) >= n_valid:
            break
        valid_idx.update(groups[k])
    if len(valid_idx) >= len(records):
        raise DataError("cannot split off a validation set: every record has the same target")
    train = [r for i, r in enumerate(records) if i not in valid_idx]
    valid = [r for i, r in enumerate(records) if i in valid_idx]
    return train, valid


def _drop_duplicate_pairs(records: list[dict], report: DataReport) -> list[dict]:
    seen, out = set(), []
    for r in records:
        k = (r["input"], r["target"])
        if k in seen:
            report._add("skipped", "duplicate_pair", r["id"])
            continue
        seen.add(k)
        out.append(r)
    return out


def _dump(records: list[dict]) -> str:
    rows = [{"id": r["id"], "input": r["input"], "target": r["target"]} for r in records]
    return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"


@dataclass(kw_only=True, frozen=True)
class PrepareOptions:
    """``prepare``'s options (the keywords of :func:`prepare_data`)."""
    source: str = option(help=f"raw data directory (train / dev or valid / test files) or training file: "
                              f"{FORMATS_HELP}")
    out: str = option("dataset", "output directory")
    valid: str | None = option(None, "validation file when --source is a single file")
    test: str | None = option(None, "test file when --source is a single file")
    valid_fraction: float = option(0.1, "share of a single source file held out for validation",
                                   parse=open_fraction)
    valid_split: str = option("auto", "auto (default): the validation file, else a random --valid-fraction of the "
                                      "source; topic: hold out whole topics of train as valid.json (about "
                                      "--valid-size questions, seeded), the validation file (Disfl-QA dev, same "
                                      "topics as train) written beside it as valid_dev.json", choices=VALID_SPLITS)
    valid_size: int = option(1000, "questions held out by --valid-split topic", parse=positive_int)
    seed: int = option(0, "seed for the split and the typo noise of the typo'd evaluation splits")
    typo_rate: float = option(0.05, "per-character typo probability of valid_typo.json / test_typo.json",
                              parse=probability)
    typo_eval: bool = option(True, "do not write valid_typo.json / test_typo.json", flag="--no-typo-eval",
                             action="store_false")
    strict: bool = option(False, "fail on the first bad record instead of skipping it", action="store_true")
    input_field: str | None = option(None, "input column/field name (a file other than raw Disfl-QA)")
    target_field: str | None = option(None, "target column/field name")
    id_field: str | None = option(None, "id column/field name")
    download: bool = option(False, "download the official Disfl-QA files into --source first when they are "
                                   "missing", action="store_true")


def _check_options(valid_fraction, typo_rate, valid_split="auto", valid_size=1000) -> None:
    if valid_split not in VALID_SPLITS:
        raise DataError(f"--valid-split must be one of {', '.join(VALID_SPLITS)}, got {valid_split!r}")
    if not isinstance(valid_size, int) or isinstance(valid_size, bool) or valid_size < 1:
        raise DataError(f"--valid-size must be a whole number >= 1, got {valid_size}")
    if not 0 < valid_fraction < 1:
        raise DataError(f"--valid-fraction must be between 0 and 1 (exclusive), got {valid_fraction}")
    if not 0 <= typo_rate <= 1:
        raise DataError(f"--typo-rate must be between 0 and 1, got {typo_rate}")


def _source_files(source: Path, out_dir: Path, valid, test, download: bool) -> dict[str, Path]:
    """split -> raw file: train/dev(valid)/test found in a source directory, or one source file."""
    files: dict[str, Path] = {}
    if source.is_dir() or (download and not source.suffix):
        if source.exists() and out_dir.exists() and source.resolve() == out_dir.resolve():
            raise DataError(f"{source}: the source directory is the output directory; prepare into another one")
        train_path = _find(source, "train") if source.is_dir() else None
        if train_path is None and download:
            download_disfl_qa(source)
            train_path = _find(source, "train")
        if train_path is None:
            raise DataError(f"{source}: no training file found (looked for train{{{','.join(SUFFIXES)}}}); "
                            f"pass download=True to fetch Disfl-QA, or point the source at a file")
        files["train"] = train_path
        for split in ("valid", "test"):
            p = _find(source, split)
            if p is not None:
                files[split] = p
    else:
        if not source.exists():
            raise DataError(f"{source}: file not found")
        files["train"] = source
    if valid is not None:
        files["valid"] = Path(valid)
    if test is not None:
        files["test"] = Path(test)
    return files


def _split_off_valid(records: dict, reports: dict, train_file: Path, valid_fraction: float, seed: int) -> dict:
    """Move a seeded ``valid_fraction`` of the training records (grouped by target) to a new valid split."""
    read_report = reports["train"]
    train_recs, valid_recs = _split_off(records["train"], valid_fraction, seed)
    records["train"], records["valid"] = train_recs, valid_recs
    read_report.n_read -= len(valid_recs)
    reports["valid"] = DataReport(source=f"{train_file} (split off: valid_fraction={valid_fraction}, "
                                         f"seed={seed})", n_read=len(valid_recs), format=read_report.format,
                                  fields=dict(read_report.fields))
    _move_notes(read_report, reports["valid"], {r["id"] for r in valid_recs})
    return {"from": str(train_file), "valid_fraction": valid_fraction, "seed": seed,
            "n_train": len(train_recs), "n_valid": len(valid_recs), "grouped_by": "target"}


def _split_off_topics(records: dict, reports: dict, train_file: Path, size: int, seed: int) -> dict:
    """Move whole topics of the training records (about ``size``) to a new, topic-disjoint valid split."""
    train_recs, valid_recs, info = topic_split(records["train"], size, seed,
                                               also_cluster=records.get("valid_dev", []))
    records["train"], records["valid"] = train_recs, valid_recs
    read_report = reports["train"]
    reports["valid"] = DataReport(source=f"{train_file} (topics held out: valid_size={size}, seed={seed})",
                                  n_read=len(valid_recs), format=read_report.format,
                                  fields=dict(read_report.fields))
    read_report.n_read -= len(valid_recs)
    _move_notes(read_report, reports["valid"], {r["id"] for r in valid_recs})
    return {"from": str(train_file), **info}


def _move_notes(source: DataReport, dest: DataReport, moved: set[str]) -> None:
    """The cleaning and flag notes of records that moved to another split go with them."""
    for kind in ("cleaned", "flagged"):
        for reason, ids in list(getattr(source, kind).items()):
            stay = [i for i in ids if i not in moved]
            go = [i for i in ids if i in moved]
            if go:
                getattr(dest, kind)[reason] = go
            if stay:
                getattr(source, kind)[reason] = stay
            else:
                del getattr(source, kind)[reason]


def _drop_leaks(records: dict, reports: dict, warnings: list[str]) -> None:
    """Skip train records sharing their input or target with an evaluation record (valid / test untouched)."""
    for split in _EVAL_SPLITS:
        if split not in records:
            continue
        inputs = {_match_key(r["input"]) for r in records[split]}
        targets = {_match_key(r["target"]) for r in records[split]}
        kept = []
        for r in records["train"]:
            if _match_key(r["input"]) in inputs or _match_key(r["target"]) in targets:
                reports["train"]._add("skipped", f"leak_{split}_in_train", r["id"])
            else:
                kept.append(r)
        records["train"] = kept
    if "test" in records:
        targets = {_match_key(r["target"]) for r in records["test"]}
        for split in ("valid", "valid_dev"):
            overlap = [r["id"] for r in records.get(split, []) if _match_key(r["target"]) in targets]
            if overlap:
                warnings.append(f"{len(overlap)} {split} records share their target with a test record "
                                f"(left as they are): {', '.join(overlap[:10])}")


def _output_texts(records: dict, seed, typo_rate, typo_eval, warnings) -> tuple[dict, dict]:
    """file name -> JSON text to write, and the record counts: the splits and their typo'd variants."""
    texts = {"train.json": _dump(records["train"]), "valid.json": _dump(records["valid"])}
    counts = {"train": len(records["train"]), "valid": len(records["valid"])}
    for split in ("valid_dev", "test"):
        if split in records:
            texts[f"{split}.json"] = _dump(records[split])
            counts[split] = len(records[split])
    if typo_eval and typo_rate > 0:
        for split in _EVAL_SPLITS:
            if split in records:
                texts[f"{split}_typo.json"] = _dump(typo_variant(records[split], seed=seed, rate=typo_rate))
                counts[f"{split}_typo"] = len(records[split])
    elif typo_eval:
        warnings.append("typo_rate=0: no valid_typo.json written")
    for split in _EVAL_SPLITS:  # the references as inputs: does a rewriter leave a clean question alone?
        if split in records:
            texts[f"{split}_clean.json"] = _dump([{**r, "input": r["target"]} for r in records[split]])
            counts[f"{split}_clean"] = len(records[split])
    return texts, counts


def prepare_data(source, out="dataset", **options) -> dict:
    """Convert raw data into canonical splits in ``out_dir`` and return the report dict.

    Writes ``train.json``, ``valid.json`` (and ``test.json`` when there is a test split), each a JSON list of
    ``{"id", "input", "target"}``; with ``typo_eval`` also ``valid_typo.json`` (and ``test_typo.json``): the same
    records and ids with typo'd inputs; and ``prepare_report.json``. ``source`` is a directory holding
    ``train`` and ``dev``/``valid`` (and ``test``) files (any of :data:`~qrewrite.data.records.SUFFIXES`), e.g. the raw
    Disfl-QA directory, or a single file; ``valid``/``test`` name files explicitly. Without a validation file,
    ``valid_fraction`` of the records (grouped by target) is split off by a seeded shuffle.

    Train records whose input or target equals (ignoring case and spacing) a valid/test record's are skipped
    as leaks ("leak_valid_in_train", "leak_test_in_train"); valid and test are never changed for leakage.
    Exact duplicate pairs inside a split are skipped ("duplicate_pair"). Typo'd copies of training inputs are
    made at training time (the training config's ``typo_copies``), not here. ``options`` are
    :class:`PrepareOptions`' fields (the ``prepare`` command's options). Everything is read and checked
    before anything is written; each file is written atomically, and output files from an earlier run that
    this run does not produce (``test.json``, ``*_typo.json``) are removed. Prints nothing.

    ``valid_split="topic"`` makes ``valid.json`` topic-disjoint (:mod:`qrewrite.data.topics`): about ``valid_size``
    training records of whole held-out topics (seeded), so no held-out topic has a question in ``train.json``;
    the given validation file (Disfl-QA dev: the same topics as train) is written beside it as ``valid_dev.json``
    (and ``valid_dev_typo.json``). The report's ``split_off`` says which topics went and, per evaluation split,
    the share of its references' capitalised words seen in the training references.
    """
    opts = PrepareOptions(source=str(source), out=str(out), **options)
    _check_options(opts.valid_fraction, opts.typo_rate, opts.valid_split, opts.valid_size)
    source, out_dir = Path(source), Path(out)
    warnings: list[str] = []
    files = _source_files(source, out_dir, opts.valid, opts.test, opts.download)
    output_dir_targets(out_dir, (*_OUTPUT_NAMES, "prepare_report.json"), inputs=files.values())  # before any work
    records, reports, split_info = _read_splits(files, opts, warnings)
    texts, counts = _output_texts(records, opts.seed, opts.typo_rate, opts.typo_eval, warnings)
    report = {
        "qrewrite_version": __version__,
        "source": str(source),
        "out_dir": str(out_dir),
        "seed": opts.seed,
        "options": {k: None if v is None else v if isinstance(v, (bool, int, float)) else str(v)
                    for k, v in dataclasses.asdict(opts).items() if k not in ("source", "out")},
        "raw_files": {split: {"path": str(p), "sha256": file_sha256(p), "bytes": p.stat().st_size}
                      for split, p in files.items()},
        "raw_fingerprint": file_fingerprint(*files.values()),
        "split_off": split_info,
        "counts": counts,
        "splits": {split: reports[split].to_dict() for split in reports},
        "files": [str(out_dir / name) for name in texts] + [str(out_dir / "prepare_report.json")],
        "outputs": {name: {"path": str(out_dir / name),
                           "sha256": hashlib.sha256(t.encode("utf-8")).hexdigest()}
                    for name, t in texts.items()},
        "warnings": warnings,
    }
    _write(out_dir, texts, report)  # everything is known to be good
    return report


def _read_splits(files: dict[str, Path], opts: PrepareOptions, warnings: list[str]):
    """Every split read and checked, duplicates and leaks dropped, validation split off where none was given:
    ``(records, reports, split_off)`` per split."""
    reading = dict(input_field=opts.input_field, target_field=opts.target_field, id_field=opts.id_field,
                   strict=opts.strict)
    records: dict[str, list[dict]] = {}
    reports: dict[str, DataReport] = {}
    for split, p in files.items():
        records[split], reports[split] = read_records(p, **reading)
    split_info = None
    if opts.valid_split == "topic" and "valid" in records:
        records["valid_dev"], reports["valid_dev"] = records.pop("valid"), reports.pop("valid")
    if "valid" not in files and opts.valid_split == "auto":
        split_info = _split_off_valid(records, reports, files["train"], opts.valid_fraction, opts.seed)
    for split in records:
        records[split] = _drop_duplicate_pairs(records[split], reports[split])
    if opts.valid_split == "topic":
        split_info = _split_off_topics(records, reports, files["train"], opts.valid_size, opts.seed)
    _drop_leaks(records, reports, warnings)
    if opts.valid_split == "topic":
        split_info["seen_name_share"] = {split: seen_name_share(records[split], records["train"])
                                         for split in _EVAL_SPLITS if split in records}
    for split in records:
        reports[split].n_kept = len(records[split])
        if not records[split]:
            source_file = files.get("valid" if split == "valid_dev" else split, files["train"])
            raise DataError(f"{source_file}: no usable {split} records left after "
                            f"removing duplicates and leaks")
    return records, reports, split_info


def _write(out_dir: Path, texts: dict[str, str], report: dict) -> None:
    """The splits and the report, each atomically; outputs of an earlier run that this one does not write go."""
    check_writable(out_dir)
    for name, t in texts.items():
        atomic_write_text(out_dir / name, t)
    for name in _OUTPUT_NAMES:
        if name not in texts:
            (out_dir / name).unlink(missing_ok=True)
    atomic_write_text(out_dir / "prepare_report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
