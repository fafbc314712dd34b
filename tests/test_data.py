import hashlib
import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers import canon, write

from qrewrite.data.prepare import prepare_data
from qrewrite.data.records import DataReport, load_split, read_records
from qrewrite.errors import DataError
from qrewrite.files import file_fingerprint, file_sha256

DISFL_QA = Path(os.environ.get("QREWRITE_DISFL_QA", "/work/shared/data/disfl-qa"))
BOM = "\ufeff"


def no_splits_left(out: Path) -> bool:
    return not any((out / n).exists() for n in ("train.json", "valid.json", "valid_typo.json",
                                                 "prepare_report.json"))


# ------------------------------------------------------------------------------------------------- formats

def test_raw_disfl_qa_dict(tmp_path):
    p = write(tmp_path / "raw.json", {"a1": {"original": "Who founded Microsoft?",
                                             "disfluent": "Who founded Apple no Microsoft?"},
                                      "b2": {"original": "Where is Lima?", "disfluent": "Where is um Lima?"}})
    recs, rep = read_records(p)
    assert recs == [{"id": "a1", "input": "Who founded Apple no Microsoft?", "target": "Who founded Microsoft?"},
                    {"id": "b2", "input": "Where is um Lima?", "target": "Where is Lima?"}]
    assert rep.format == "disfl-qa" and rep.n_read == 2 and rep.n_kept == 2 and rep.skipped == {}


def test_old_list_format(tmp_path):
    p = write(tmp_path / "old.json", [{"input_disfluent": "Who no what is it?", "output_original": "What is it?"},
                                      {"input_disfluent": "Where uh is it?", "output_original": "Where is it?"}])
    recs, _ = read_records(p)
    assert recs == [{"id": "0", "input": "Who no what is it?", "target": "What is it?"},
                    {"id": "1", "input": "Where uh is it?", "target": "Where is it?"}]


def test_json_list_custom_fields(tmp_path):
    p = write(tmp_path / "custom.json", [{"qid": 17, "messy": "Whta is it?", "clean_q": "What is it?", "x": 1}])
    recs, rep = read_records(p, input_field="messy", target_field="clean_q", id_field="qid")
    assert recs == [{"id": "17", "input": "Whta is it?", "target": "What is it?"}]
    assert rep.fields == {"input": "messy", "target": "clean_q", "id": "qid"}
    with pytest.raises(DataError, match=r"custom\.json.*record 0.*'nope'.*\['qid', 'messy', 'clean_q', 'x'\]"):
        read_records(p, input_field="nope", target_field="clean_q")


def test_default_field_names(tmp_path):
    p = write(tmp_path / "q.json", [{"question": "Um who?", "clean": "Who?"}])
    assert read_records(p)[0] == [{"id": "0", "input": "Um who?", "target": "Who?"}]


def test_jsonl_and_jsonl_inside_json(tmp_path):
    lines = '{"id": "a", "input": "Who uh is it?", "target": "Who is it?"}\n\n' \
            '{"id": "b", "input": "What no where is it?", "target": "Where is it?"}\n'
    for name in ("d.jsonl", "d.json"):
        recs, rep = read_records(write(tmp_path / name, lines))
        assert [r["id"] for r in recs] == ["a", "b"] and rep.format == "jsonl"
        assert recs[1] == {"id": "b", "input": "What no where is it?", "target": "Where is it?"}


def test_csv_quotes_commas_and_newlines(tmp_path):
    p = write(tmp_path / "d.csv", 'id,input,target\n'
                                  '1,"Who founded Apple, no, Microsoft?","Who founded Microsoft?"\n'
                                  '2,"He said ""um"" twice, why?",Why?\n'
                                  '3,"Where is\nLima?",Where is Lima?\n')
    recs, rep = read_records(p)
    assert recs == [{"id": "1", "input": "Who founded Apple, no, Microsoft?", "target": "Who founded Microsoft?"},
                    {"id": "2", "input": 'He said "um" twice, why?', "target": "Why?"},
                    {"id": "3", "input": "Where is Lima?", "target": "Where is Lima?"}]
    assert rep.format == "csv" and rep.cleaned == {"whitespace": ["3"]}


def test_tsv(tmp_path):
    p = write(tmp_path / "d.tsv", "question\toriginal\nUm, why, then?\tWhy then?\n")
    assert read_records(p)[0] == [{"id": "0", "input": "Um, why, then?", "target": "Why then?"}]


def test_prepare_finds_every_format_read_records_reads(tmp_path):
    """A source directory's train / dev files are looked for with every suffix of the format registry."""
    src = tmp_path / "raw"
    src.mkdir()
    write(src / "train.tsv", "id\tinput\ttarget\n" + "".join(f"{r['id']}\t{r['input']}\t{r['target']}\n"
                                                            for r in canon(6)))
    write(src / "dev.ndjson", "".join(json.dumps(r) + "\n" for r in canon(2, "v")))
    report = prepare_data(src, tmp_path / "out", typo_eval=False)
    assert report["raw_files"]["train"]["path"].endswith("train.tsv")
    assert report["raw_files"]["valid"]["path"].endswith("dev.ndjson")
    assert report["counts"] == {"train": 6, "valid": 2, "valid_clean": 2}
    assert report["splits"]["train"]["format"] == "tsv" and report["splits"]["valid"]["format"] == "jsonl"


def test_bom_json_and_csv(tmp_path):
    pj = write(tmp_path / "bom.json", (BOM + json.dumps([{"id": "a", "input": BOM + "Who uh is it?",
                                                          "target": "Who is it?"}])).encode("utf-8"))
    recs, rep = read_records(pj)
    assert recs == [{"id": "a", "input": "Who uh is it?", "target": "Who is it?"}]
    assert rep.cleaned == {"bom": ["a"]}
    pc = write(tmp_path / "bom.csv", (BOM + "id,input,target\nx,Where um is it?,Where is it?\n").encode("utf-8"))
    recs, rep = read_records(pc)
    assert recs == [{"id": "x", "input": "Where um is it?", "target": "Where is it?"}]
    assert rep.fields["id"] == "id" and rep.cleaned == {}
    # A BOM before the header's first field name must not hide that column either.
    pc2 = write(tmp_path / "bom2.csv", (BOM + "input,target\nWhere um is it?,Where is it?\n").encode("utf-8"))
    assert read_records(pc2)[0][0]["input"] == "Where um is it?"
    pl = write(tmp_path / "bom.jsonl", (BOM + '{"input": "A?", "target": "B?"}\n'
                                        + BOM + '{"input": "C?", "target": "D?"}\n').encode("utf-8"))
    assert [r["input"] for r in read_records(pl)[0]] == ["A?", "C?"]
    for recs in (read_records(pj)[0], read_records(pc)[0], read_records(pl)[0]):
        assert all(BOM not in v and BOM not in k for r in recs for k, v in r.items())


def test_require_target_false(tmp_path):
    p = write(tmp_path / "in.json", [{"id": "a", "input": "Who  uh is it?"}])
    recs, _ = read_records(p, require_target=False)
    assert recs == [{"id": "a", "input": "Who uh is it?"}]
    with pytest.raises(DataError, match=r"in\.json.*target"):
        read_records(p)
    p2 = write(tmp_path / "in2.json", [{"id": "a", "input": "Q?", "target": "T?"}])
    assert read_records(p2, require_target=False)[0] == [{"id": "a", "input": "Q?", "target": "T?"}]


# ------------------------------------------------------------------------------------------------ cleaning

def test_cleaning_report_names_ids(tmp_path):
    p = write(tmp_path / "c.json", [
        {"id": "ok", "input": "Who is it?", "target": "Who is it now?"},
        {"id": "spaces", "input": "  Who   uh\tis it? ", "target": "Who is it?\n"},
        {"id": "blank", "input": "  \t ", "target": "Who?"},
    ])
    recs, rep = read_records(p)
    assert [r["id"] for r in recs] == ["ok", "spaces"]
    assert recs[1] == {"id": "spaces", "input": "Who uh is it?", "target": "Who is it?"}
    assert rep.cleaned == {"whitespace": ["spaces"]}
    assert rep.skipped == {"empty": ["blank"]}
    assert rep.n_read == 3 and rep.n_kept == 2
    d = rep.to_dict()
    assert d["skipped"] == {"empty": ["blank"]} and d["n_skipped"] == 1 and d["source"] == str(p)
    json.dumps(d)
    s = rep.summary()
    assert "read 3, kept 2" in s and "empty: 1: blank" in s and "whitespace: 1: spaces" in s


def test_summary_truncates_ids():
    rep = DataReport("x.json", 30, 5, skipped={"empty": [f"id{i}" for i in range(25)]})
    s = rep.summary()
    assert "id9" in s and "id10" not in s and "(+15 more)" in s


def test_placeholders_and_identity_flagged_not_skipped(tmp_path):
    p = write(tmp_path / "f.json", {"a": {"original": "Who is it?", "disfluent": "#VALUE!"},
                                    "b": {"original": "Who is it now?", "disfluent": "question n/a"},
                                    "c": {"original": "Where?", "disfluent": "Where?"},
                                    "d": {"original": "When?", "disfluent": "Um when?"}})
    recs, rep = read_records(p)
    assert len(recs) == 4
    assert rep.flagged == {"placeholder": ["a", "b"], "input_equals_target": ["c"]}


# ----------------------------------------------------------------------------------------------- bad files

BAD_FILES = {
    "invalid_json": ("bad.json", '[\n  {"input": "a", "target": "b"},\n  {"input": "c" "target": "d"}\n]',
                     [r"line 3", r"column"]),
    "top_number": ("num.json", "42", [r"got a number"]),
    "top_string": ("str.json", '"just a question?"', [r"got a string"]),
    "dict_wrong_values": ("dict.json", {"q1": "Who?", "q2": "What?"}, [r"'q1'", r"original", r"disfluent"]),
    "dict_missing_field": ("dict2.json", {"q1": {"original": "Who?", "disfluent": "Um who?"},
                                          "q2": {"original": "What?", "noisy": "Um what?"}},
                           [r"'q2'", r"disfluent", r"\['noisy', 'original'\]"]),
    "record_missing_field": ("miss.json", [{"id": "a", "input": "Q?", "target": "T?"},
                                           {"id": "b", "input": "Q2?"}],
                             [r"record 1", r"'b'", r"'target'", r"\['id', 'input'\]"]),
    "no_known_field": ("unk.json", [{"foo": "Q?", "bar": "T?"}], [r"record 0", r"input", r"\['foo', 'bar'\]"]),
    "list_of_non_objects": ("strs.json", ["Who?", "What?"], [r"record 0", r"got a string"]),
    "not_utf8": ("latin.json", '[{"input": "Caf\xe9?", "target": "Cafe?"}]'.encode("latin-1"),
                 [r"UTF-8", r"byte offset 15"]),
    "csv_renamed_columns": ("cols.csv", "qid,messy,clean\n1,Um who?,Who?\n",
                            [r"input", r"header found: \['qid', 'messy', 'clean'\]"]),
    "csv_missing_target": ("cols2.csv", "id,input\n1,Um who?\n", [r"target", r"header found: \['id', 'input'\]"]),
    "empty_file": ("empty.json", "", [r"empty"]),
    "whitespace_file": ("ws.jsonl", "  \n\n", [r"empty"]),
    "bom_only": ("bomonly.csv", BOM.encode("utf-8"), [r"empty"]),
    "empty_list": ("emptylist.json", "[]", [r"no records"]),
    "nothing_usable": ("allbad.json", [{"id": "a", "input": " ", "target": "T?"},
                                       {"id": "b", "input": None, "target": "T?"}],
                       [r"no usable records", r"empty: 1", r"not_a_string: 1"]),
    "jsonl_bad_line": ("bad.jsonl", '{"input": "a", "target": "b"}\n{"input": "c", target}\n', [r"line 2"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_raise_and_prepare_writes_nothing(tmp_path, case):
    name, content, patterns = BAD_FILES[case]
    p = write(tmp_path / name, content)
    with pytest.raises(DataError) as ei:
        read_records(p)
    msg = str(ei.value)
    assert name in msg
    for pat in patterns:
        assert re.search(pat, msg), (pat, msg)
    out = tmp_path / "out"
    with pytest.raises(DataError):
        prepare_data(p, out)
    assert no_splits_left(out)
    # A bad validation file stops prepare_data before the (good) train file is written.
    good = write(tmp_path / "good.json", canon(5))
    with pytest.raises(DataError, match=name.replace(".", r"\.")):
        prepare_data(good, out, valid=p)
    assert no_splits_left(out)


def test_file_not_found(tmp_path):
    with pytest.raises(DataError, match=r"nothere\.json.*not found"):
        read_records(tmp_path / "nothere.json")
    with pytest.raises(DataError, match=r"nothere\.json.*not found"):
        prepare_data(tmp_path / "nothere.json", tmp_path / "out")
    good = write(tmp_path / "good.json", canon(5))
    with pytest.raises(DataError, match=r"nodev\.json.*not found"):
        prepare_data(good, tmp_path / "out", valid=tmp_path / "nodev.json")
    assert no_splits_left(tmp_path / "out")
    with pytest.raises(DataError, match=r"no training file"):
        prepare_data(tmp_path, tmp_path / "out")


# --------------------------------------------------------------------------------------------- bad records

BAD_RECORDS = {
    "null_input": ({"id": "r1", "input": None, "target": "T?"}, "not_a_string", "input"),
    "number_target": ({"id": "r1", "input": "Q?", "target": 3}, "not_a_string", "target"),
    "list_input": ({"id": "r1", "input": ["Q?"], "target": "T?"}, "not_a_string", "input"),
    "empty_input": ({"id": "r1", "input": "", "target": "T?"}, "empty", "input"),
    "blank_target": ({"id": "r1", "input": "Q?", "target": " \n "}, "empty", "target"),
    "too_long": ({"id": "r1", "input": "Q" * 50 + "?", "target": "T?"}, "too_long", "input"),
    "duplicate_id": ({"id": "good0", "input": "Other?", "target": "Other one?"}, "duplicate_id", "id"),
    "null_id": ({"id": None, "input": "Q?", "target": "T?"}, "bad_id", "id"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_bad_records_skipped_or_strict(tmp_path, case):
    rec, reason, fld = BAD_RECORDS[case]
    rows = [{"id": "good0", "input": "Um who?", "target": "Who?"}, rec,
            {"id": "good1", "input": "Uh what?", "target": "What?"}]
    p = write(tmp_path / "recs.json", rows)
    recs, rep = read_records(p, max_chars=40)
    rid = "#1" if case == "null_id" else "r1" if case != "duplicate_id" else "good0"
    assert [r["id"] for r in recs] == ["good0", "good1"]
    assert rep.skipped == {reason: [rid]}
    assert rep.n_read == 3 and rep.n_kept == 2
    with pytest.raises(DataError) as ei:
        read_records(p, strict=True, max_chars=40)
    msg = str(ei.value)
    assert "recs.json" in msg and repr(rid) in msg and repr(fld) in msg and "record 1" in msg


def test_bad_csv_row_skipped(tmp_path):
    p = write(tmp_path / "rows.csv", "id,input,target\n1,Um who?,Who?\n2,Who, no, what?,What?\n3,Short\n")
    recs, rep = read_records(p)
    assert [r["id"] for r in recs] == ["1"]
    assert rep.skipped == {"bad_row": ["2", "3"]}
    with pytest.raises(DataError, match=r"rows\.csv.*row 1 \(line 3\).*'2'.*5 cells, the header has 3"):
        read_records(p, strict=True)


def test_duplicate_keys_in_raw_dict(tmp_path):
    p = write(tmp_path / "dup.json", '{"k": {"original": "A?", "disfluent": "Um A?"},'
                                     ' "k": {"original": "B?", "disfluent": "Um B?"},'
                                     ' "k": {"original": "C?", "disfluent": "Um C?"}}')
    recs, rep = read_records(p)
    assert recs == [{"id": "k", "input": "Um A?", "target": "A?"}]
    assert rep.skipped == {"duplicate_id": ["k", "k"]} and rep.n_read == 3 and rep.n_skipped == 2


# ------------------------------------------------------------------------------------------- prepare_data

def test_prepare_leaks_and_duplicates(tmp_path):
    train = canon(6) + [
        {"id": "leak_in", "input": "  UM WHAT uh is v question 0?", "target": "Something else?"},
        {"id": "leak_tg", "input": "Different input?", "target": "what is v question 1?"},
        {"id": "leak_te", "input": "Another one?", "target": "What is x question 0?"},
        {"id": "dup", "input": "Um what uh is t question 0?", "target": "What is t question 0?"},
    ]
    valid = canon(3, "v") + [{"id": "vdup", "input": "Um what uh is v question 2?",
                              "target": "What is v question 2?"}]
    out = tmp_path / "out"
    rep = prepare_data(write(tmp_path / "train.json", train), out, valid=write(tmp_path / "valid.json", valid),
                       test=write(tmp_path / "test.json", canon(2, "x")), typo_eval=False)
    tr = rep["splits"]["train"]["skipped"]
    assert tr == {"duplicate_pair": ["dup"], "leak_valid_in_train": ["leak_in", "leak_tg"],
                  "leak_test_in_train": ["leak_te"]}
    assert rep["splits"]["valid"]["skipped"] == {"duplicate_pair": ["vdup"]}
    assert [r["id"] for r in load_split(out / "train.json")] == [f"t{i}" for i in range(6)]
    assert [r["id"] for r in load_split(out / "valid.json")] == ["v0", "v1", "v2"]
    assert len(load_split(out / "test.json")) == 2
    assert rep["counts"] == {"train": 6, "valid": 3, "test": 2, "valid_clean": 3, "test_clean": 2}
    assert json.loads((out / "prepare_report.json").read_text()) == rep


def test_prepare_valid_fraction_split(tmp_path):
    recs = canon(100)
    recs[1]["target"] = recs[0]["target"]  # same clean question: must land on one side
    src = write(tmp_path / "all.json", recs)

    def ids(out):
        return ([r["id"] for r in load_split(out / "train.json")], [r["id"] for r in load_split(out / "valid.json")])

    a = prepare_data(src, tmp_path / "a", seed=1, valid_fraction=0.2)
    ta, va = ids(tmp_path / "a")
    prepare_data(src, tmp_path / "b", seed=1, valid_fraction=0.2)
    assert ids(tmp_path / "b") == (ta, va)
    prepare_data(src, tmp_path / "c", seed=2, valid_fraction=0.2)
    assert set(ids(tmp_path / "c")[1]) != set(va)
    assert not set(ta) & set(va) and len(ta) + len(va) == 100
    assert 19 <= len(va) <= 21
    assert ("t0" in va) == ("t1" in va)
    assert a["split_off"]["n_valid"] == len(va)
    assert a["splits"]["train"]["n_read"] == len(ta) and a["splits"]["valid"]["n_read"] == len(va)
    with pytest.raises(ValueError):
        prepare_data(src, tmp_path / "d", valid_fraction=1.0)


def test_prepare_typo_eval_and_no_training_copies(tmp_path):
    out = tmp_path / "out"
    rep = prepare_data(write(tmp_path / "train.json", canon(10)), out,
                       valid=write(tmp_path / "dev.json", canon(4, "v")), seed=5)
    train = load_split(out / "train.json")
    assert [r["id"] for r in train] == [f"t{i}" for i in range(10)] and rep["counts"]["train"] == 10
    with pytest.raises(TypeError, match="typo_copies"):  # training makes the typo'd copies (one stage)
        prepare_data(tmp_path / "train.json", tmp_path / "x", valid=tmp_path / "dev.json", typo_copies=2)
    valid, vtypo = load_split(out / "valid.json"), load_split(out / "valid_typo.json")
    assert [r["id"] for r in valid] == [r["id"] for r in vtypo]
    assert all(a["target"] == b["target"] and a["input"] != b["input"] for a, b in zip(valid, vtypo))
    # same seed, same files
    prepare_data(tmp_path / "train.json", tmp_path / "again", valid=tmp_path / "dev.json", seed=5)
    assert (tmp_path / "again" / "train.json").read_bytes() == (out / "train.json").read_bytes()
    assert (tmp_path / "again" / "valid_typo.json").read_bytes() == (out / "valid_typo.json").read_bytes()
    # the references as inputs: does a rewriter leave clean questions alone?
    vclean = load_split(out / "valid_clean.json")
    assert [(r["id"], r["input"], r["target"]) for r in vclean] == [(r["id"], r["target"], r["target"]) for r in valid]
    assert rep["counts"]["valid_clean"] == len(valid)


def test_prepare_directory_report_and_stale_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write(src / "train.json", canon(8))
    write(src / "dev.json", canon(3, "v"))
    write(src / "test.jsonl", "".join(json.dumps(r) + "\n" for r in canon(2, "x")))
    out = tmp_path / "out"
    rep = prepare_data(src, out)
    assert sorted(os.listdir(out)) == ["prepare_report.json", "test.json", "test_clean.json", "test_typo.json",
                                       "train.json", "valid.json", "valid_clean.json", "valid_typo.json"]
    for split, name in (("train", "train.json"), ("valid", "dev.json"), ("test", "test.jsonl")):
        assert rep["raw_files"][split]["sha256"] == hashlib.sha256((src / name).read_bytes()).hexdigest()
    assert rep["raw_fingerprint"] == file_fingerprint(src / "train.json", src / "dev.json", src / "test.jsonl")
    assert rep["outputs"]["train.json"]["sha256"] == hashlib.sha256((out / "train.json").read_bytes()).hexdigest()
    assert rep["seed"] == 0 and rep["options"]["typo_rate"] == 0.05
    assert sorted(Path(f).name for f in rep["files"]) == sorted(os.listdir(out))
    # Re-run without a test split: the old test files must not stay behind.
    (src / "test.jsonl").unlink()
    prepare_data(src, out, typo_eval=False)
    assert sorted(os.listdir(out)) == ["prepare_report.json", "train.json", "valid.json", "valid_clean.json"]
    # Ambiguous directory
    write(src / "valid.json", canon(3, "w"))
    with pytest.raises(DataError, match=r"more than one valid file"):
        prepare_data(src, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


def test_prepare_writes_nothing_when_leaks_empty_train(tmp_path):
    t = write(tmp_path / "train.json", canon(3))
    with pytest.raises(DataError, match=r"no usable train records"):
        prepare_data(t, tmp_path / "out", valid=t)
    assert no_splits_left(tmp_path / "out")


def test_load_split_and_fingerprint(tmp_path):
    p = write(tmp_path / "split.json", canon(3))
    assert load_split(p) == canon(3)
    bad = write(tmp_path / "badsplit.json", canon(2) + [{"id": "z", "input": "", "target": "T?"}])
    with pytest.raises(DataError, match=r"badsplit\.json.*'z'.*'input'"):
        load_split(bad)
    assert file_fingerprint(p, bad) == file_sha256(p, bad)[:16] != file_fingerprint(p)
    assert len(file_fingerprint(p)) == 16


def test_download_offline_and_faked(tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("no route to host")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match=r"could not download https://raw\.githubusercontent\.com/.*train\.json"
                                        r".*no route to host"):
        prepare_data(tmp_path / "disfl", tmp_path / "out", download=True)
    assert no_splits_left(tmp_path / "out")

    payload = {"train": {f"k{i}": {"original": f"What is {i}?", "disfluent": f"Who no what is {i}?"}
                         for i in range(5)},
               "dev": {"d0": {"original": "Where?", "disfluent": "Um where?"}},
               "test": {"e0": {"original": "When?", "disfluent": "Uh when?"}}}
    seen = []

    class Resp:
        def __init__(self, body):
            self.body = body

        def read(self):
            return self.body

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    def fake(url, timeout=None):
        assert timeout
        name = url.rsplit("/", 1)[1].removesuffix(".json")
        seen.append(name)
        return Resp(json.dumps(payload[name]).encode())
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    rep = prepare_data(tmp_path / "disfl", tmp_path / "out", download=True)
    assert seen == ["train", "dev", "test"]
    assert rep["counts"]["train"] == 5 and rep["counts"]["valid"] == 1 and rep["counts"]["test"] == 1
    # Files present: no second download.
    prepare_data(tmp_path / "disfl", tmp_path / "out", download=True)
    assert seen == ["train", "dev", "test"]


# ------------------------------------------------------------------------------------------- real data

@pytest.mark.skipif(not (DISFL_QA / "train.json").is_file(), reason=f"raw Disfl-QA not found at {DISFL_QA}")
def test_prepare_real_disfl_qa(tmp_path):
    out = tmp_path / "dataset"
    rep = prepare_data(DISFL_QA, out)
    tr, va = rep["splits"]["train"], rep["splits"]["valid"]
    assert tr["n_read"] == 7182 and tr["format"] == "disfl-qa"
    assert tr["skipped"]["empty"] == ["5729d36b1d04691400779609"]
    leaks = tr["skipped"].get("leak_valid_in_train", [])
    assert set(tr["skipped"]) <= {"empty", "leak_valid_in_train"}
    assert tr["n_kept"] == 7182 - 1 - len(leaks) == rep["counts"]["train"]
    assert va["n_read"] == va["n_kept"] == 1000 and va["skipped"] == {}
    train, valid = load_split(out / "train.json"), load_split(out / "valid.json")
    assert len(train) == tr["n_kept"] and len(valid) == 1000 and len(load_split(out / "valid_typo.json")) == 1000
    assert not {r["target"].lower() for r in train} & {r["target"].lower() for r in valid}
    assert not (out / "test.json").exists()

    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("json", data_files={"train": str(out / "train.json"),
                                                   "validation": str(out / "valid.json")},
                               cache_dir=str(tmp_path / "hf_cache"))
    assert ds["train"].num_rows == len(train) and ds["validation"].num_rows == 1000
    assert set(ds["train"].column_names) == {"id", "input", "target"}
