import json
import re

from qrewrite.data.prepare import prepare_data
from qrewrite.data.records import load_split, read_records
from qrewrite.data.sample import QUESTIONS, SAMPLE_DIR, SAMPLE_KINDS, generate_sample, sample_kind, write_sample


def test_generate_sample_deterministic():
    a = generate_sample(0)
    assert a == generate_sample(0)
    assert generate_sample(1) != a


def test_committed_files_equal_generator(tmp_path):
    train, valid = generate_sample(0)
    assert json.loads((SAMPLE_DIR / "train.json").read_text(encoding="utf-8")) == train
    assert json.loads((SAMPLE_DIR / "valid.json").read_text(encoding="utf-8")) == valid
    write_sample(tmp_path)
    for name in ("train.json", "valid.json"):
        assert (tmp_path / name).read_bytes() == (SAMPLE_DIR / name).read_bytes(), \
            f"dataset/sample/{name} is stale: run python -m qrewrite.data.sample"


def test_canonical_records_and_no_leak():
    train, valid = generate_sample(0)
    for recs in (train, valid):
        for r in recs:
            assert set(r) == {"id", "input", "target"}
            assert r["input"] != r["target"] and r["input"] == " ".join(r["input"].split())
            assert sample_kind(r["id"]) in SAMPLE_KINDS
        assert len({r["id"] for r in recs}) == len(recs)
        assert len({(r["input"], r["target"]) for r in recs}) == len(recs)
    train_targets = {r["target"].casefold() for r in train}
    train_inputs = {r["input"].casefold() for r in train}
    assert not any(r["target"].casefold() in train_targets for r in valid)
    assert not any(r["input"].casefold() in train_inputs for r in valid)


def test_sizes_and_variety():
    train, valid = generate_sample(0)
    assert 250 <= len(train) <= 350 and 60 <= len(valid) <= 100
    assert len(QUESTIONS) >= 120 and len(set(QUESTIONS)) == len(QUESTIONS)
    assert len({r["target"] for r in train + valid}) >= 120
    for recs in (train, valid):
        kinds = {sample_kind(r["id"]) for r in recs}
        assert kinds == set(SAMPLE_KINDS)
    wh = {r["target"].split()[0] for r in train}
    assert {"What", "Which", "Who", "Where", "When", "Why", "How"} <= wh
    assert sum((SAMPLE_DIR / n).stat().st_size for n in ("train.json", "valid.json")) < 100_000


def test_kinds_look_like_their_kind():
    train, _ = generate_sample(0)
    for r in train:
        kind = sample_kind(r["id"])
        if kind == "filler":
            assert re.search(r"\b(um|uh|er|like|you know|well|hmm|I guess)\b", r["input"], re.I)
        if kind in ("correction", "restart", "filler"):
            # no typos: the clean question's words all survive (lower-cased first letter aside)
            words = r["target"].lower().rstrip("?").split()
            assert all(w in r["input"].lower() for w in words), r
        if kind == "correction":
            assert len(r["input"]) > len(r["target"])


def test_sample_files_read_and_prepare(tmp_path):
    recs, rep = read_records(SAMPLE_DIR / "train.json", strict=True)
    assert rep.n_kept == len(recs) and rep.cleaned == {} and rep.skipped == {}
    report = prepare_data(SAMPLE_DIR, tmp_path / "out")
    assert report["splits"]["train"]["skipped"] == {}
    assert len(load_split(tmp_path / "out" / "train.json")) == len(recs)
