"""Read, validate and clean question-rewriting data: JSON, JSONL, CSV, TSV and raw Disfl-QA files (:data:`FORMATS`).

Every reader returns records ``{"id": str, "input": str, "target": str}`` and a :class:`DataReport` that names,
by id, every record that was cleaned or skipped. Nothing is dropped silently, and a file that cannot be used
raises :class:`DataError` with a message that says which file, which record and which field, and what was
expected. Turning raw files into the canonical splits is :mod:`qrewrite.data.prepare`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from qrewrite.errors import DataError

__all__ = ["DataReport", "read_records", "load_split", "INPUT_FIELDS", "TARGET_FIELDS", "FORMATS", "SUFFIXES",
           "FORMATS_HELP"]

INPUT_FIELDS = ("input", "question", "disfluent", "input_disfluent")
TARGET_FIELDS = ("target", "original", "output_original", "clean")

_BOM = "\ufeff"
# Inputs that are not questions but spreadsheet errors or "no question" markers (the raw Disfl-QA files hold
# a few dozen, e.g. "#VALUE!" and "question n/a"). They are flagged in the report, not skipped.
_PLACEHOLDER = re.compile(
    r"""^(\#[a-z0-9/]+[!?]?|((question|answer)\s*)?n/?a\.?|no\s+question\.?|[\W_]*)$""", re.IGNORECASE)


@dataclass
class DataReport:
    """What reading and cleaning did to one file or split; nothing is dropped without being named here.

    ``cleaned``: reason -> ids changed ("whitespace", "bom"); ``skipped``: reason -> ids left out ("empty",
    "not_a_string", "bad_id", "bad_row", "duplicate_id", "too_long", "not_unicode", "duplicate_pair",
    "leak_valid_in_train", "leak_test_in_train"); ``flagged``: reason -> ids kept but worth a look ("placeholder",
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

def read_text(path: Path) -> str:
    """A data file's text (UTF-8, a BOM allowed), or one DataError naming the file: missing, a directory, not
    UTF-8, empty."""
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


def _load_json(path: Path, text: str) -> tuple[str, list[tuple[str | None, Any, str]], None]:
    """A JSON list of records, a raw Disfl-QA object ``{id: {original, disfluent}}``, or JSON Lines misnamed."""
    try:
        obj = json.loads(text, object_pairs_hook=_pairs_hook)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data" and text.lstrip()[:1] == "{":  # JSON Lines in a .json file
            return _load_jsonl(path, text)
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


def _load_jsonl(path: Path, text: str) -> tuple[str, list[tuple[str | None, Any, str]], None]:
    return "jsonl", [(None, obj, f"line {ln}") for ln, obj in _parse_jsonl(path, text)], None


def _load_csv(path: Path, text: str, delimiter: str = ","):
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


def _load_tsv(path: Path, text: str):
    return _load_csv(path, text, "\t")


@dataclass(frozen=True)
class Format:
    """A data file format: what help texts call it, the suffixes that select it, and its parser (``(path, text)``
    -> ``(format as the report names it, [(key or None, record, where), ...], CSV header or None)``)."""
    label: str
    suffixes: tuple[str, ...]
    load: Callable


# Every format read_records reads. A file with another suffix is read as JSON when its text starts with { or [,
# else as CSV; prepare looks for these suffixes in a source directory.
FORMATS = (
    Format("JSON (a list of records, or raw Disfl-QA)", (".json",), _load_json),
    Format("JSON Lines", (".jsonl", ".ndjson"), _load_jsonl),
    Format("CSV", (".csv",), _load_csv),
    Format("TSV", (".tsv",), _load_tsv),
)
SUFFIXES = tuple(suffix for f in FORMATS for suffix in f.suffixes)
FORMATS_HELP = ", ".join(f.label for f in FORMATS[:-1]) + f" or {FORMATS[-1].label}"


def _load(path: Path, text: str) -> tuple[str, list[tuple[str | None, Any, str]], list[str] | None]:
    """Parse the file with the format its suffix names (else JSON when it looks like JSON, else CSV)."""
    text = text.lstrip(_BOM)
    for f in FORMATS:
        if path.suffix.lower() in f.suffixes:
            return f.load(path, text)
    return (_load_json if text.lstrip()[:1] in ("{", "[") else _load_csv)(path, text)


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


_SURROGATE = re.compile("[\ud800-\udfff]")


def question_problem(value: str, max_chars: int | None = 2000) -> tuple[str, str] | None:
    """``(reason, message)`` when ``value`` cannot be a question (empty, longer than ``max_chars``, not valid
    Unicode: a lone surrogate, which a JSON escape or undecodable command-line bytes give), else None. The one
    check for questions from a file, the command line or stdin."""
    if not value.strip():
        return "empty", "expected a non-empty question, got an empty or whitespace-only string"
    if max_chars is not None and len(value) > max_chars:
        return "too_long", f"{len(value)} characters, more than max_chars={max_chars}"
    if (m := _SURROGATE.search(value)) is not None:
        return "not_unicode", (f"a lone surrogate {m.group().encode('utf-8', 'backslashreplace').decode()} at "
                               f"character {m.start() + 1}: not valid Unicode text (undecodable bytes or a "
                               "broken \\u escape); it cannot be written as UTF-8")
    return None


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

    Formats (:data:`FORMATS`) are detected from the suffix and the content: raw Disfl-QA (one JSON object
    ``{id: {"original", "disfluent"}}``), the older list format (``[{"input_disfluent", "output_original"}]``),
    any JSON list of objects, JSON Lines, CSV (``.csv``, or ``.tsv`` with tabs). Fields: ``input_field``
    (default: the first of ``INPUT_FIELDS`` in the first record), ``target_field`` (``TARGET_FIELDS``),
    ``id_field`` (default ``"id"``; the record index when the first record has none). With
    ``require_target=False`` a file without a target field gives records without a ``"target"`` key.

    Cleaning (reported in ``report.cleaned``): strip a BOM, strip and collapse whitespace. Bad records are
    skipped and named in ``report.skipped`` ("empty", "not_a_string", "bad_id", "bad_row", "duplicate_id",
    "too_long", "not_unicode"), or raise :class:`DataError` with ``strict=True``. Placeholder inputs ("#VALUE!",
    "question n/a") and inputs equal to their target are kept and named in ``report.flagged``.
    """
    path = Path(path)
    fmt, items, header = _load(path, read_text(path))
    items = [(k, _strip_keys(r), w) for k, r, w in items]
    if not items:
        raise DataError(f"{path}: no records in the file ({fmt})")
    _, first, first_where = items[0]
    if not isinstance(first, dict):
        raise DataError(f"{path}: {first_where}: expected an object with input/target fields, "
                        f"got {_type_name(first)}")
    is_csv = header is not None
    fields0 = header if is_csv else [k for k in first if k != "__bad_row__"]
    in_f = _pick(path, fields0, input_field, INPUT_FIELDS, "input", first_where, True, is_csv)
    tg_f = _pick(path, fields0, target_field, TARGET_FIELDS, "target", first_where, require_target, is_csv)
    id_f = None if fmt == "disfl-qa" else \
        _pick(path, fields0, id_field, ("id",), "id", first_where, id_field is not None, is_csv)  # else: the key
    report = DataReport(source=str(path), format=fmt,
                        fields={"input": in_f, "target": tg_f, "id": id_f if fmt != "disfl-qa" else "<key>"})
    reader = _RecordReader(path, report, in_f, tg_f, id_f, strict, max_chars)
    records = [out for index, item in enumerate(items) if (out := reader.read(index, *item)) is not None]
    report.n_kept = len(records)
    if not records:
        reasons = ", ".join(f"{r}: {len(ids)} ({', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})"
                            for r, ids in report.skipped.items())
        raise DataError(f"{path}: no usable records left after cleaning (read {report.n_read}; "
                        f"skipped {reasons})")
    return records, report


class _RecordReader:
    """Checks and cleans the records of one file, one at a time, into ``report``."""

    def __init__(self, path: Path, report: DataReport, in_f: str, tg_f: str | None, id_f: str | None,
                 strict: bool, max_chars: int | None):
        self.path, self.report, self.in_f, self.tg_f, self.id_f = path, report, in_f, tg_f, id_f
        self.strict, self.max_chars = strict, max_chars
        self.seen: dict[str, str] = {}  # id -> where it was first seen

    def bad(self, reason: str, rid: str, where: str, field_name: str | None, problem: str) -> None:
        """Skip the record (named in the report), or with ``strict`` stop at it."""
        if self.strict:
            fld = f", field {field_name!r}" if field_name else ""
            raise DataError(f"{self.path}: {where} (id {rid!r}){fld}: {problem}")
        self.report._add("skipped", reason, rid)

    def read(self, index: int, key: str | None, rec: Any, where: str) -> dict | None:
        """The record ``{"id", "input"[, "target"]}``, or None when it is skipped."""
        self.report.n_read += 1
        if not isinstance(rec, dict):
            raise DataError(f"{self.path}: {where}: expected an object with input/target fields, "
                            f"got {_type_name(rec)}")
        if "__bad_row__" in rec:  # a CSV row with too few or too many cells
            rid = str(rec.get(self.id_f) or "").strip() if self.id_f else str(index)
            self.bad("bad_row", rid or f"#{index}", where, None, rec["__bad_row__"])
            return None
        rid, id_ok = self._id(index, key, rec, where)
        if id_ok and _SURROGATE.search(rid):
            self.bad("bad_id", rid.encode("utf-8", "backslashreplace").decode(), where, self.id_f,
                     "the id holds a lone surrogate: not valid Unicode, it cannot be written as UTF-8")
            return None
        if not id_ok:
            self.bad("bad_id", rid, where, self.id_f, f"expected a non-empty string or integer id, "
                                                      f"got {_type_name(rec.get(self.id_f, key))}")
            return None
        if rid in self.seen:
            self.bad("duplicate_id", rid, where, self.id_f or "id", f"duplicate id, first seen at {self.seen[rid]}")
            return None
        self.seen[rid] = where
        out, changes = {"id": rid}, []
        for name, fld in (("input", self.in_f), ("target", self.tg_f)):
            if fld is None:
                continue
            value, problem = self._text(rec, fld, name, rid, where)
            if problem is not None:
                self.bad(problem[0], rid, where, fld, problem[1])
                return None
            out[name], changes = value[0], changes + value[1]
        for ch in dict.fromkeys(changes):
            self.report._add("cleaned", ch, rid)
        if _PLACEHOLDER.match(out["input"]) or ("target" in out and _PLACEHOLDER.match(out["target"])):
            self.report._add("flagged", "placeholder", rid)
        if out.get("target") == out["input"]:
            self.report._add("flagged", "input_equals_target", rid)
        return out

    def _id(self, index: int, key: str | None, rec: dict, where: str) -> tuple[str, bool]:
        """Which id names this record (for reports and messages), and whether it is a usable one."""
        if key is not None:
            rid = key.replace(_BOM, "").strip()
            return (rid, True) if rid else (f"#{index}", False)
        if self.id_f is None:
            return str(index), True
        if self.id_f not in rec:
            raise DataError(f"{self.path}: {where}: missing id field {self.id_f!r}; "
                            f"the record has fields {[k for k in rec if k != '__bad_row__']}")
        raw_id = rec[self.id_f]
        id_ok = (isinstance(raw_id, str) and bool(raw_id.strip())) or (
            isinstance(raw_id, int) and not isinstance(raw_id, bool))
        return (str(raw_id).replace(_BOM, "").strip() if id_ok else f"#{index}"), id_ok

    def _text(self, rec: dict, fld: str, name: str, rid: str, where: str):
        """``((cleaned value, cleaning changes), None)``, or ``(None, (reason, problem))`` for a bad value."""
        if fld not in rec:
            raise DataError(f"{self.path}: {where} (id {rid!r}): missing {name} field {fld!r}; "
                            f"the record has fields {sorted(rec)}")
        value = rec[fld]
        if not isinstance(value, str):
            return None, ("not_a_string", f"expected a string, got {_type_name(value)}")
        value, changes = _clean(value)
        if (problem := question_problem(value, self.max_chars)) is not None:
            return None, problem
        return (value, changes), None


def load_split(path) -> list[dict]:
    """Read a canonical split file (``{"id", "input", "target"}`` records); any bad record raises DataError."""
    records, _ = read_records(path, strict=True)
    return records



