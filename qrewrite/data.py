"""Read, validate and clean question-rewriting data, and write the canonical splits.

Every reader returns records ``{"id": str, "input": str, "target": str}`` and a :class:`DataReport` that names,
by id, every record that was cleaned or skipped. Nothing is dropped silently, and a file that cannot be used
raises :class:`DataError` with a message that says which file, which record and which field, and what was
expected. :func:`prepare_data` turns raw files into ``train.json`` / ``valid.json`` (/ ``test.json``) plus
``prepare_report.json``; it reads and checks everything before it writes anything.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from . import __version__
from .files import atomic_write_bytes, atomic_write_text, check_writable, file_fingerprint
from .noise import typo_variant

__all__ = [
    "DataError", "DataReport", "read_records", "prepare_data", "load_split", "data_fingerprint",
    "download_disfl_qa", "DISFL_QA_URL", "INPUT_FIELDS", "TARGET_FIELDS",
]

INPUT_FIELDS = ("input", "question", "disfluent", "input_disfluent")
TARGET_FIELDS = ("target", "original", "output_original", "clean")
DISFL_QA_URL = "https://raw.githubusercontent.com/google-research-datasets/disfl-qa/main/{name}.json"

# File names prepare_data looks for inside a source directory, in order.
_SPLIT_NAMES = {"train": ("train",), "valid": ("valid", "dev", "validation"), "test": ("test",)}
_EXTS = (".json", ".jsonl", ".csv")
# Outputs prepare_data may write; the ones a run does not write are removed so none is left stale.
_OUTPUT_NAMES = ("train.json", "valid.json", "test.json", "valid_typo.json", "test_typo.json")

_BOM = "\ufeff"
# Inputs that are not questions but spreadsheet errors or "no question" markers (the raw Disfl-QA files hold
# a few dozen, e.g. "#VALUE!" and "question n/a"). They are flagged in the report, not skipped.
_PLACEHOLDER = re.compile(
    r"""^(\#[a-z0-9/]+[!?]?|((question|answer)\s*)?n/?a\.?|no\s+question\.?|[\W_]*)$""", re.IGNORECASE)


class DataError(ValueError):
    """Unusable file. Message names the file, the record (index or id) and the field, and what was expected."""


@dataclass
class DataReport:
    """What reading and cleaning did to one file or split; nothing is dropped without being named here.

    ``cleaned``: reason -> ids changed ("whitespace", "bom"); ``skipped``: reason -> ids left out ("empty",
    "not_a_string", "bad_id", "bad_row", "duplicate_id", "too_long", "duplicate_pair", "leak_valid_in_train",
    "leak_test_in_train"); ``flagged``: reason -> ids kept but worth a look ("placeholder",
    "input_equals_target"). ``n_read`` counts the records that entered, ``n_kept`` those that came out.
    """

    source: str
    n_read: int = 0
    n_kept: int = 0
    cleaned: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)
    flagged: dict[str, list[str]] = field(default_factory=dict)
    format: str = ""
    fields: dict[str, str | None] = field(default_factory=dict)

    def _add(self, kind: str, reason: str, rid: str) -> None:
        getattr(self, kind).setdefault(reason, []).append(rid)

    @property
    def n_skipped(self) -> int:
        return sum(len(v) for v in self.skipped.values())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["n_skipped"] = self.n_skipped
        return d

    def summary(self, max_ids: int = 10) -> str:
        lines = [f"{self.source}: read {self.n_read}, kept {self.n_kept}, skipped {self.n_skipped}"
                 + (f" ({self.format})" if self.format else "")]
        for kind in ("skipped", "cleaned", "flagged"):
            for reason, ids in sorted(getattr(self, kind).items()):
                shown = ", ".join(ids[:max_ids])
                more = f" (+{len(ids) - max_ids} more)" if len(ids) > max_ids else ""
                lines.append(f"  {kind} {reason}: {len(ids)}: {shown}{more}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------- reading

def _decode(path: Path) -> str:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a data file")
    data = path.read_bytes()
    offset = 0
    if data.startswith(b"\xef\xbb\xbf"):
        data, offset = data[3:], 3
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 at byte offset {e.start + offset} "
                        f"(byte 0x{data[e.start]:02x}); save the file as UTF-8") from None
    if not text.replace(_BOM, "").strip():
        raise DataError(f"{path}: the file is empty")
    return text


class _PairsDict(dict):
    """A JSON object that remembers its key/value pairs in order, duplicates included."""
    pairs: list


def _pairs_hook(pairs: list) -> _PairsDict:
    d = _PairsDict(pairs)
    d.pairs = pairs
    return d


def _json_error(path: Path, e: json.JSONDecodeError, line: int | None = None) -> DataError:
    where = f"line {line if line is not None else e.lineno}, column {e.colno}"
    return DataError(f"{path}: invalid JSON at {where}: {e.msg}")


def _parse_jsonl(path: Path, text: str) -> list[tuple[int, Any]]:
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.replace(_BOM, "").strip()
        if not line:
            continue
        try:
            rows.append((lineno, json.loads(line, object_pairs_hook=_pairs_hook)))
        except json.JSONDecodeError as e:
            raise _json_error(path, e, lineno) from None
    return rows


def _load(path: Path, text: str) -> tuple[str, list[tuple[str | None, Any, str]], list[str] | None]:
    """Parse the file into ``(format, [(key or None, record, where), ...], CSV header or None)``."""
    suffix = path.suffix.lower()
    text = text.lstrip(_BOM)
    head = text.lstrip()[:1]
    if suffix in (".csv", ".tsv") or (suffix not in (".json", ".jsonl", ".ndjson") and head not in "{["):
        return _load_csv(path, text, "\t" if suffix == ".tsv" else ",")
    if suffix in (".jsonl", ".ndjson"):
        rows = _parse_jsonl(path, text)
        return "jsonl", [(None, obj, f"line {ln}") for ln, obj in rows], None
    try:
        obj = json.loads(text, object_pairs_hook=_pairs_hook)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data" and head == "{":  # JSON Lines in a .json file
            rows = _parse_jsonl(path, text)
            return "jsonl", [(None, o, f"line {ln}") for ln, o in rows], None
        raise _json_error(path, e) from None
    if isinstance(obj, list):
        return "json-list", [(None, r, f"record {i}") for i, r in enumerate(obj)], None
    if isinstance(obj, dict):
        if not obj:
            raise DataError(f"{path}: the JSON object is empty, no records")
        for key, value in obj.pairs:
            if not isinstance(value, dict):
                raise DataError(
                    f"{path}: record {key!r}: expected an object like {{\"original\": ..., \"disfluent\": ...}} "
                    f"(raw Disfl-QA: one JSON object mapping id -> {{original, disfluent}}), "
                    f"got {_type_name(value)}")
        return "disfl-qa", [(str(k), v, f"record {k!r}") for k, v in obj.pairs], None
    raise DataError(f"{path}: expected a JSON list of records or a raw Disfl-QA object "
                    f"{{id: {{\"original\", \"disfluent\"}}}} at the top level, got {_type_name(obj)}")


def _load_csv(path: Path, text: str, delimiter: str):
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: the file is empty") from None
    except csv.Error as e:
        raise DataError(f"{path}: cannot parse CSV header: {e}") from None
    header = [h.replace(_BOM, "").strip() for h in header]
    rows = []
    try:
        for i, cells in enumerate(reader):
            line = reader.line_num
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # blank line
            rec: dict[str, Any] = dict(zip(header, cells))
            if len(cells) != len(header):
                rec = {"__bad_row__": f"row has {len(cells)} cells, the header has {len(header)}", **rec}
            rows.append((None, rec, f"row {len(rows)} (line {line})"))
    except csv.Error as e:
        raise DataError(f"{path}: cannot parse CSV near line {reader.line_num}: {e}") from None
    return ("tsv" if delimiter == "\t" else "csv"), rows, header


def _strip_keys(rec: Any) -> Any:
    """Field names without a BOM or surrounding spaces (a BOM must never end up in a field name)."""
    if not isinstance(rec, dict):
        return rec
    return {(k.replace(_BOM, "").strip() if isinstance(k, str) else k): v for k, v in rec.items()}


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object", _PairsDict: "an object"}.get(type(v), type(v).__name__)


def _pick(path: Path, fields: Iterable[str], given: str | None, defaults: tuple[str, ...], what: str,
          where: str, required: bool, is_csv: bool) -> str | None:
    fields = list(fields)
    if given is not None:
        candidates = (given,)
    else:
        candidates = defaults
    for c in candidates:
        if c in fields:
            return c
    if not required:
        return None
    tried = ", ".join(repr(c) for c in candidates)
    if is_csv:
        raise DataError(f"{path}: CSV has no {what} column (looked for: {tried}); header found: {fields}")
    raise DataError(f"{path}: {where}: missing {what} field (looked for: {tried}); "
                    f"the record has fields {fields}")


def _clean(value: str) -> tuple[str, list[str]]:
    changes = []
    if _BOM in value:
        value = value.replace(_BOM, "")
        changes.append("bom")
    collapsed = " ".join(value.split())
    if collapsed != value:
        changes.append("whitespace")
    return collapsed, changes


def read_records(path, *, input_field=None, target_field=None, id_field=None, require_target=True,
                 strict=False, max_chars=2000) -> tuple[list[dict], DataReport]:
    """Return records ``{"id", "input", "target"}`` and a :class:`DataReport`.

    Formats are detected from the suffix and the content: raw Disfl-QA (one JSON object ``{id: {"original",
    "disfluent"}}``), the older list format (``[{"input_disfluent", "output_original"}]``), any JSON list of
    objects, JSON Lines, CSV (``.csv``, or ``.tsv`` with tabs). Fields: ``input_field`` (default: the first of
    ``INPUT_FIELDS`` in the first record), ``target_field`` (``TARGET_FIELDS``), ``id_field`` (default
    ``"id"``; the record index when the first record has none). With ``require_target=False`` a file without
    a target field gives records without a ``"target"`` key.

    Cleaning (reported in ``report.cleaned``): strip a BOM, strip and collapse whitespace. Bad records are
    skipped and named in ``report.skipped`` ("empty", "not_a_string", "bad_id", "bad_row", "duplicate_id",
    "too_long"), or raise :class:`DataError` with ``strict=True``. Placeholder inputs ("#VALUE!",
    "question n/a") and inputs equal to their target are kept and named in ``report.flagged``.
    """
    path = Path(path)
    text = _decode(path)
    fmt, items, header = _load(path, text)
    is_csv = header is not None
    items = [(k, _strip_keys(r), w) for k, r, w in items]
    report = DataReport(source=str(path), format=fmt)
    if not items:
        raise DataError(f"{path}: no records in the file ({fmt})")

    _, first, first_where = items[0]
    if not isinstance(first, dict):
        raise DataError(f"{path}: {first_where}: expected an object with input/target fields, "
                        f"got {_type_name(first)}")
    fields0 = header if is_csv else [k for k in first if k != "__bad_row__"]
    in_f = _pick(path, fields0, input_field, INPUT_FIELDS, "input", first_where, True, is_csv)
    tg_f = _pick(path, fields0, target_field, TARGET_FIELDS, "target", first_where, require_target, is_csv)
    if fmt == "disfl-qa":
        id_f = None  # the key is the id
    else:
        id_f = _pick(path, fields0, id_field, ("id",), "id", first_where, id_field is not None, is_csv)
    report.fields = {"input": in_f, "target": tg_f, "id": id_f if fmt != "disfl-qa" else "<key>"}

    records: list[dict] = []
    seen: dict[str, str] = {}

    def bad(reason: str, rid: str, where: str, field_name: str | None, problem: str) -> None:
        if strict:
            fld = f", field {field_name!r}" if field_name else ""
            raise DataError(f"{path}: {where} (id {rid!r}){fld}: {problem}")
        report._add("skipped", reason, rid)

    for index, (key, rec, where) in enumerate(items):
        report.n_read += 1
        if not isinstance(rec, dict):
            raise DataError(f"{path}: {where}: expected an object with input/target fields, "
                            f"got {_type_name(rec)}")
        if "__bad_row__" in rec:  # a CSV row with too few or too many cells
            rid = str(rec.get(id_f) or "").strip() if id_f else str(index)
            bad("bad_row", rid or f"#{index}", where, None, rec["__bad_row__"])
            continue
        # Which id names this record (for reports and messages).
        if key is not None:
            rid, id_ok = key.replace(_BOM, "").strip(), True
            if not rid:
                rid, id_ok = f"#{index}", False
        elif id_f is None:
            rid, id_ok = str(index), True
        elif id_f not in rec:
            raise DataError(f"{path}: {where}: missing id field {id_f!r}; "
                            f"the record has fields {[k for k in rec if k != '__bad_row__']}")
        else:
            raw_id = rec[id_f]
            id_ok = (isinstance(raw_id, str) and bool(raw_id.strip())) or (
                isinstance(raw_id, int) and not isinstance(raw_id, bool))
            rid = str(raw_id).replace(_BOM, "").strip() if id_ok else f"#{index}"
        if not id_ok:
            bad("bad_id", rid, where, id_f, f"expected a non-empty string or integer id, "
                                           f"got {_type_name(rec.get(id_f, key))}")
            continue
        if rid in seen:
            bad("duplicate_id", rid, where, id_f or "id", f"duplicate id, first seen at {seen[rid]}")
            continue
        seen[rid] = where
        out = {"id": rid}
        problem = None
        changes: list[str] = []
        for name, fld in (("input", in_f), ("target", tg_f)):
            if fld is None:
                continue
            if fld not in rec:
                raise DataError(f"{path}: {where} (id {rid!r}): missing {name} field {fld!r}; "
                                f"the record has fields {sorted(rec)}")
            value = rec[fld]
            if not isinstance(value, str):
                problem = ("not_a_string", fld, f"expected a string, got {_type_name(value)}")
                break
            value, ch = _clean(value)
            if not value:
                problem = ("empty", fld, "expected a non-empty question, got an empty or whitespace-only string")
                break
            if max_chars is not None and len(value) > max_chars:
                problem = ("too_long", fld, f"{len(value)} characters, more than max_chars={max_chars}")
                break
            changes += ch
            out[name] = value
        if problem is not None:
            bad(problem[0], rid, where, problem[1], problem[2])
            continue
        for ch in dict.fromkeys(changes):
            report._add("cleaned", ch, rid)
        if _PLACEHOLDER.match(out["input"]) or ("target" in out and _PLACEHOLDER.match(out["target"])):
            report._add("flagged", "placeholder", rid)
        if out.get("target") == out["input"]:
            report._add("flagged", "input_equals_target", rid)
        records.append(out)

    report.n_kept = len(records)
    if not records:
        reasons = ", ".join(f"{r}: {len(ids)} ({', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})"
                            for r, ids in report.skipped.items())
        raise DataError(f"{path}: no usable records left after cleaning (read {report.n_read}; "
                        f"skipped {reasons})")
    return records, report


def load_split(path) -> list[dict]:
    """Read a canonical split file (``{"id", "input", "target"}`` records); any bad record raises DataError."""
    records, _ = read_records(path, strict=True)
    return records


def data_fingerprint(*paths) -> str:
    """sha256 over the bytes of the files, in order (first 16 hex digits)."""
    return file_fingerprint(*paths)


# -------------------------------------------------------------------------------------------------- preparing

def _key(s: str) -> str:
    return " ".join(s.casefold().split())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
    found = [directory / f"{n}{e}" for n in _SPLIT_NAMES[split] for e in _EXTS if (directory / f"{n}{e}").is_file()]
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
        groups.setdefault(_key(r["target"]), []).append(i)
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


def prepare_data(source, out_dir="dataset", *, valid=None, test=None, valid_fraction=0.1, seed=0,
                 typo_copies=0, typo_rate=0.05, typo_eval=True, strict=False, input_field=None,
                 target_field=None, id_field=None, download=False) -> dict:
    """Convert raw data into canonical splits in ``out_dir`` and return the report dict.

    Writes ``train.json``, ``valid.json`` (and ``test.json`` when there is a test split), each a JSON list of
    ``{"id", "input", "target"}``; with ``typo_eval`` also ``valid_typo.json`` (and ``test_typo.json``): the same
    records and ids with typo'd inputs; and ``prepare_report.json``. ``source`` is a directory holding
    ``train`` and ``dev``/``valid`` (and ``test``) files (``.json``, ``.jsonl`` or ``.csv``), e.g. the raw
    Disfl-QA directory, or a single file; ``valid``/``test`` name files explicitly. Without a validation file,
    ``valid_fraction`` of the records (grouped by target) is split off by a seeded shuffle.

    Train records whose input or target equals (ignoring case and spacing) a valid/test record's are skipped
    as leaks ("leak_valid_in_train", "leak_test_in_train"); valid and test are never changed for leakage.
    Exact duplicate pairs inside a split are skipped ("duplicate_pair"). ``typo_copies=k`` adds k typo'd
    copies of each training record (ids ``<id>#typo1`` .. ``<id>#typo<k>``). Everything is read and checked
    before anything is written; each file is written atomically, and output files from an earlier run that
    this run does not produce (``test.json``, ``*_typo.json``) are removed. Prints nothing.
    """
    if not 0 < valid_fraction < 1:
        raise ValueError(f"valid_fraction must be between 0 and 1, got {valid_fraction}")
    if typo_copies < 0 or int(typo_copies) != typo_copies:
        raise ValueError(f"typo_copies must be a whole number >= 0, got {typo_copies}")
    if not 0 <= typo_rate <= 1:
        raise ValueError(f"typo_rate must be between 0 and 1, got {typo_rate}")
    if typo_copies and typo_rate == 0:
        raise ValueError("typo_copies > 0 needs typo_rate > 0 (the copies would equal the originals)")

    source = Path(source)
    out_dir = Path(out_dir)
    warnings: list[str] = []
    files: dict[str, Path] = {}
    if source.is_dir() or (download and not source.suffix):
        if source.exists() and out_dir.exists() and source.resolve() == out_dir.resolve():
            raise DataError(f"{source}: the source directory is the output directory; prepare into another one")
        train_path = _find(source, "train") if source.is_dir() else None
        if train_path is None and download:
            download_disfl_qa(source)
            train_path = _find(source, "train")
        if train_path is None:
            raise DataError(f"{source}: no training file found (looked for train{{{','.join(_EXTS)}}}); "
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

    opts = dict(input_field=input_field, target_field=target_field, id_field=id_field, strict=strict)
    records: dict[str, list[dict]] = {}
    reports: dict[str, DataReport] = {}
    for split, p in files.items():
        records[split], reports[split] = read_records(p, **opts)

    split_info = None
    if "valid" not in files:
        read_report = reports["train"]
        train_recs, valid_recs = _split_off(records["train"], valid_fraction, seed)
        records["train"], records["valid"] = train_recs, valid_recs
        read_report.n_read -= len(valid_recs)
        reports["valid"] = DataReport(source=f"{files['train']} (split off: valid_fraction={valid_fraction}, "
                                             f"seed={seed})", n_read=len(valid_recs), format=read_report.format,
                                      fields=dict(read_report.fields))
        # Cleaning / flag notes of the records that moved to valid go with them.
        moved = {r["id"] for r in valid_recs}
        for kind in ("cleaned", "flagged"):
            for reason, ids in list(getattr(read_report, kind).items()):
                stay = [i for i in ids if i not in moved]
                go = [i for i in ids if i in moved]
                if go:
                    getattr(reports["valid"], kind)[reason] = go
                if stay:
                    getattr(read_report, kind)[reason] = stay
                else:
                    del getattr(read_report, kind)[reason]
        split_info = {"from": str(files["train"]), "valid_fraction": valid_fraction, "seed": seed,
                      "n_train": len(train_recs), "n_valid": len(valid_recs), "grouped_by": "target"}

    for split in records:
        records[split] = _drop_duplicate_pairs(records[split], reports[split])

    # Leaks: a train record sharing its input or its target with an evaluation record.
    for split in ("valid", "test"):
        if split not in records:
            continue
        ins = {_key(r["input"]) for r in records[split]}
        tgs = {_key(r["target"]) for r in records[split]}
        kept = []
        for r in records["train"]:
            if _key(r["input"]) in ins or _key(r["target"]) in tgs:
                reports["train"]._add("skipped", f"leak_{split}_in_train", r["id"])
            else:
                kept.append(r)
        records["train"] = kept
    if "test" in records:
        tgs = {_key(r["target"]) for r in records["test"]}
        overlap = [r["id"] for r in records["valid"] if _key(r["target"]) in tgs]
        if overlap:
            warnings.append(f"{len(overlap)} valid records share their target with a test record "
                            f"(left as they are): {', '.join(overlap[:10])}")

    for split in records:
        reports[split].n_kept = len(records[split])
        if not records[split]:
            raise DataError(f"{files.get(split, files['train'])}: no usable {split} records left after "
                            f"removing duplicates and leaks")

    # Noise.
    train_out = list(records["train"])
    for k in range(1, int(typo_copies) + 1):
        train_out += typo_variant(records["train"], seed=seed, rate=typo_rate, id_suffix=f"#typo{k}")
    texts = {"train.json": _dump(train_out), "valid.json": _dump(records["valid"])}
    counts = {"train": len(train_out), "train_original": len(records["train"]),
              "train_typo_copies": len(train_out) - len(records["train"]), "valid": len(records["valid"])}
    if "test" in records:
        texts["test.json"] = _dump(records["test"])
        counts["test"] = len(records["test"])
    if typo_eval and typo_rate > 0:
        for split in ("valid", "test"):
            if split in records:
                texts[f"{split}_typo.json"] = _dump(typo_variant(records[split], seed=seed, rate=typo_rate))
                counts[f"{split}_typo"] = len(records[split])
    elif typo_eval:
        warnings.append("typo_rate=0: no valid_typo.json written")

    report = {
        "qrewrite_version": __version__,
        "source": str(source),
        "out_dir": str(out_dir),
        "seed": seed,
        "options": {"valid_fraction": valid_fraction, "typo_copies": int(typo_copies), "typo_rate": typo_rate,
                    "typo_eval": typo_eval, "strict": strict, "input_field": input_field,
                    "target_field": target_field, "id_field": id_field, "download": download,
                    "valid": None if valid is None else str(valid), "test": None if test is None else str(test)},
        "raw_files": {split: {"path": str(p), "sha256": _sha256(p), "bytes": p.stat().st_size}
                      for split, p in files.items()},
        "raw_fingerprint": data_fingerprint(*files.values()),
        "split_off": split_info,
        "counts": counts,
        "splits": {split: reports[split].to_dict() for split in reports},
        "files": [str(out_dir / name) for name in texts] + [str(out_dir / "prepare_report.json")],
        "outputs": {name: {"path": str(out_dir / name),
                           "sha256": hashlib.sha256(t.encode("utf-8")).hexdigest()}
                    for name, t in texts.items()},
        "warnings": warnings,
    }

    # Everything is known to be good: write.
    check_writable(out_dir)
    for name, t in texts.items():
        atomic_write_text(out_dir / name, t)
    for name in _OUTPUT_NAMES:
        if name not in texts:
            (out_dir / name).unlink(missing_ok=True)
    atomic_write_text(out_dir / "prepare_report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report
