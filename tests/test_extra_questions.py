"""Clean questions on other topics as training pairs (qrewrite.data.extra) and their place in training data."""

import json
import random

import pytest
from helpers import SAMPLE, run_cli, smoke_config

from qrewrite.config import load_config, parse_mix
from qrewrite.data.extra import extra_pairs, normalise, read_questions
from qrewrite.data.records import load_split
from qrewrite.errors import ConfigError, DataError
from qrewrite.files import file_fingerprint
from qrewrite.train.trainer import training_data

QUESTIONS = [f"Which river flows through city number {i} of {name}?" for i, name in
             enumerate(["Hungary", "Austria", "Serbia", "Slovakia", "Romania", "Bulgaria", "Croatia", "Ukraine"] * 8)]
QUESTIONS += ["What do no online pharmacies allow?", "Is the river not navigable or closed in winter?"]


def _jsonl(path, questions, field="question"):
    path.write_text("".join(json.dumps({"id": None, "title": None, field: q}) + "\n" for q in questions),
                    encoding="utf-8")
    return path


def _pairs(path, seed=0, count=0, mix="synthetic=0.55,typo=0.15,filler=0.1,clean=0.2", exclude=None):
    return extra_pairs(path, count=count, mix=mix, seed=seed, typo_rate=0.06, exclude=exclude or {})


def test_pairs_are_seeded_and_independent_of_file_order(tmp_path):
    a, rep_a = _pairs(_jsonl(tmp_path / "a.jsonl", QUESTIONS), count=40)
    shuffled = random.Random(5).sample(QUESTIONS, len(QUESTIONS))
    b, rep_b = _pairs(_jsonl(tmp_path / "b.jsonl", shuffled), count=40)
    assert sorted(a, key=lambda r: r["id"]) == sorted(b, key=lambda r: r["id"])
    assert rep_a["kinds"] == rep_b["kinds"] and rep_a["n_pairs"] == 40
    c, _ = _pairs(tmp_path / "a.jsonl", seed=1, count=40)
    assert {r["target"] for r in c} != {r["target"] for r in a}  # another seed draws other questions


def test_every_kind_keeps_the_question_as_target_and_is_counted(tmp_path):
    pairs, report = _pairs(_jsonl(tmp_path / "q.jsonl", QUESTIONS))
    assert report["n_pairs"] == len(pairs) == len(QUESTIONS)
    assert {r["target"] for r in pairs} == set(QUESTIONS)
    kinds = {k: [r for r in pairs if r["id"].endswith("#" + k)] for k in report["kinds"]}
    assert {k: len(v) for k, v in kinds.items()} == report["kinds"]
    assert all(kinds[k] for k in ("synthetic", "typo", "clean"))
    assert all(r["input"] == r["target"] for r in kinds["clean"])
    assert all(r["input"] != r["target"] for k in ("synthetic", "typo", "filler") for r in kinds[k])
    assert report["fingerprint"] and report["file"].endswith("q.jsonl")


def test_only_clean_pairs_when_the_mix_says_so(tmp_path):
    pairs, report = _pairs(_jsonl(tmp_path / "q.jsonl", QUESTIONS), mix="clean=1")
    assert all(r["input"] == r["target"] for r in pairs) and report["kinds"]["clean"] == len(QUESTIONS)


def test_questions_with_cue_words_are_often_left_clean(tmp_path):
    cue_questions = [f"Why did no ship of fleet {i} sail or not?" for i in range(200)]
    pairs, report = _pairs(_jsonl(tmp_path / "q.jsonl", cue_questions), mix="synthetic=1")
    # half are kept clean by the cue-word rule although the mix asks for synthetic pairs only
    assert 60 < report["kinds"]["clean"] < 140 and report["clean_with_cue_words"] == report["kinds"]["clean"]


def test_duplicates_leaks_and_training_targets_are_left_out_and_counted(tmp_path):
    questions = [*QUESTIONS, QUESTIONS[0].upper(), "", "x" * 3000]
    path = _jsonl(tmp_path / "q.jsonl", questions)
    exclude = {"leak_valid": {normalise(QUESTIONS[1])}, "in_train": {normalise(QUESTIONS[2])}}
    pairs, report = _pairs(path, exclude=exclude)
    assert report["skipped"] == {"empty": 1, "too_long": 1, "duplicate": 1, "leak_valid": 1, "in_train": 1}
    targets = {r["target"] for r in pairs}
    assert QUESTIONS[1] not in targets and QUESTIONS[2] not in targets and len(pairs) == len(QUESTIONS) - 2


def test_text_files_and_other_field_names(tmp_path):
    (tmp_path / "q.txt").write_text("\n".join(QUESTIONS[:5]) + "\n\n", encoding="utf-8")
    assert read_questions(tmp_path / "q.txt")[0] == QUESTIONS[:5]
    assert read_questions(_jsonl(tmp_path / "t.jsonl", QUESTIONS[:3], field="target"))[0] == QUESTIONS[:3]


@pytest.mark.parametrize("content, match", [
    ('{"question": "What?"}\n{"question": "Why?"\n', r"line 2: not valid JSON"),
    ('{"question": "What?"}\n{"text": "Why?"}\n', r"line 2: no question field"),
    ('{"question": 7}\n', r"line 1, field 'question': expected a string"),
    ("[1, 2]\n", r"line 1: expected an object"),
    ("\n\n", r"the file is empty"),
])
def test_a_bad_file_is_one_error_naming_file_and_line(tmp_path, content, match):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=match) as e:
        read_questions(path)
    assert str(path) in str(e.value)


def test_missing_file_and_bad_mix_are_config_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_questions(tmp_path / "nope.jsonl")
    for mix, match in [("synthetic=1,oops=2", "oops"), ("clean=-1", ">= 0"), ("clean=0", "above 0"),
                       ("typo=nan", "finite"), ("clean", "KIND=SHARE")]:
        with pytest.raises(ConfigError, match=match):
            load_config(None, {"extra_questions": "q.jsonl", "extra_mix": mix})
    with pytest.raises(ConfigError, match="extra_count: set extra_questions"):
        load_config(None, {"extra_count": 5})
    assert parse_mix("typo=1 clean=3") == {"synthetic": 0, "typo": 0.25, "filler": 0, "clean": 0.75}


def test_training_data_appends_the_pairs_after_the_disfl_qa_records(tmp_path):
    originals = load_split(SAMPLE / "train.json")
    valid = load_split(SAMPLE / "valid.json")
    path = _jsonl(tmp_path / "q.jsonl", [*QUESTIONS, valid[0]["target"], originals[0]["target"]])
    cfg = load_config(None, {"train_file": str(SAMPLE / "train.json"), "valid_file": str(SAMPLE / "valid.json"),
                             "extra_questions": str(path), "extra_count": 30, "batch_size": 1})
    records, _, report = training_data(cfg)
    assert records[:len(originals)] == originals and len(records) == len(originals) + 30
    assert report["skipped"]["leak_valid"] == 1 and report["skipped"]["in_train"] == 1


def test_an_empty_train_file_trains_on_the_extra_pairs_alone(tmp_path):
    valid = load_split(SAMPLE / "valid.json")
    path = _jsonl(tmp_path / "q.jsonl", [*QUESTIONS, valid[0]["target"]])
    cfg = load_config(None, {"train_file": "", "valid_file": str(SAMPLE / "valid.json"),
                             "extra_questions": str(path), "extra_count": 30, "batch_size": 1})
    records, valid_records, report = training_data(cfg)
    assert len(records) == 30 and all(r["id"] for r in records) and valid_records == valid
    assert {r["target"] for r in records} <= set(QUESTIONS) and report["skipped"]["leak_valid"] == 1
    with pytest.raises(ConfigError, match="train_file: empty, and no extra_questions"):
        load_config(None, {"train_file": ""})


def test_run_json_records_the_source_and_its_counts(tiny_model, tmp_path):
    path = _jsonl(tmp_path / "q.jsonl", QUESTIONS)
    cfg = smoke_config(tiny_model, tmp_path / "weights", run_name="extra", extra_questions=str(path),
                       extra_count=20, max_steps=2, eval_steps=0, save_steps=0)
    from qrewrite.train.trainer import train
    run_dir = train(cfg)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["extra_questions"]["n_pairs"] == 20 and sum(info["extra_questions"]["kinds"].values()) == 20
    assert info["n_train"] == len(load_split(SAMPLE / "train.json")) + 20


def test_a_first_stage_on_extra_questions_alone_trains_and_fingerprints_the_validation_file(tiny_model, tmp_path):
    path = _jsonl(tmp_path / "q.jsonl", QUESTIONS)
    cfg = smoke_config(tiny_model, tmp_path / "weights", run_name="stage1", train_file="", extra_questions=str(path),
                       extra_count=20, max_steps=1, eval_steps=0, save_steps=0)
    from qrewrite.train.trainer import train
    info = json.loads((train(cfg) / "run.json").read_text())
    assert info["status"] == "complete" and info["n_train"] == 20 and info["train_file"] == ""
    assert info["data_fingerprint"] == file_fingerprint(SAMPLE / "valid.json")


def test_a_bad_extra_file_stops_train_with_one_error_line(tiny_model, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "What?"}\n{oops\n', encoding="utf-8")
    result = run_cli("train", "--config", "configs/smoke.yaml", "--model", tiny_model, "--output-root",
                     tmp_path / "w", "--train-file", SAMPLE / "train.json", "--valid-file", SAMPLE / "valid.json",
                     "--extra-questions", bad, "--max-steps", "1")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error:") and f"{bad}: line 2" in lines[-1] and "Traceback" not in result.stderr


def test_cue_word_questions_script_keeps_exactly_the_questions_with_a_plain_cue_word(tmp_path):
    """scripts/cue_word_questions.py: the questions holding "no" / "not" / "or" ..., in the source's order, one
    {"question"} per line, readable again as extra questions; the others left out."""
    source, out = _jsonl(tmp_path / "q.jsonl", QUESTIONS), tmp_path / "extra" / "cues.jsonl"
    result = run_cli("scripts/cue_word_questions.py", source, out)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["question"] for line in out.read_text(encoding="utf-8").splitlines()] == \
        ["What do no online pharmacies allow?", "Is the river not navigable or closed in winter?"]
    assert read_questions(out)[0] == QUESTIONS[-2:]
    assert "2 of 66 questions hold a cue word" in result.stdout


def test_cue_word_questions_script_adds_a_seeded_order_independent_draw_of_others(tmp_path):
    """--others N: every cue-word question plus N others, the same N whatever the source's order, other N for
    another seed; more than the source has: one error naming the flag."""
    def written(source, *flags):
        out = tmp_path / f"out-{len(list(tmp_path.iterdir()))}.jsonl"
        result = run_cli("scripts/cue_word_questions.py", source, out, *flags)
        assert result.returncode == 0, result.stderr
        return [json.loads(line)["question"] for line in out.read_text(encoding="utf-8").splitlines()]

    source = _jsonl(tmp_path / "q.jsonl", QUESTIONS)
    shuffled = _jsonl(tmp_path / "s.jsonl", random.Random(3).sample(QUESTIONS, len(QUESTIONS)))
    a, b = written(source, "--others", "10"), written(shuffled, "--others", "10")
    assert len(a) == 12 and set(QUESTIONS[-2:]) <= set(a) and set(a) == set(b)
    assert set(written(source, "--others", "10", "--seed", "1")) != set(a)
    result = run_cli("scripts/cue_word_questions.py", source, tmp_path / "x.jsonl", "--others", "65")
    assert result.returncode == 2 and "--others 65" in result.stderr and "only 64" in result.stderr
