"""Catalogue of bad inputs, end to end through ``python -m qrewrite`` / ``finetune.py`` (issue "Reliability and
safety"). Every case must exit with status 2 and one clear ``error:`` line that names the file and the record /
field (or the config key), and must leave no output behind that looks complete.

Data-level behaviour (which record is skipped for which reason) is covered in test_data.py; here the point is
what a user of the command line sees. Cases that have to import transformers (~9 s each) run concurrently.
"""

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import ROOT, SAMPLE, SMOKE, canon, run_cli, write

BOM = "\ufeff"


def run_parallel(calls: dict, workers: int = 4) -> dict:
    """{name: (args, kwargs for run_cli)} -> {name: CompletedProcess}, run concurrently."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(run_cli, *args, **kw) for name, (args, kw) in calls.items()}
        return {name: f.result() for name, f in futures.items()}


def assert_error(r, *patterns):
    """Exit status 2, an 'error:' message on stderr matching every pattern, no traceback."""
    assert r.returncode == 2, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    assert "error:" in r.stderr, r.stderr
    for pat in patterns:
        assert re.search(pat, r.stderr), f"{pat!r} not in stderr:\n{r.stderr}"


SPLITS = ("train.json", "valid.json", "test.json", "valid_typo.json", "prepare_report.json")
EVAL_FILES = ("metrics.json", "predictions.jsonl", "valid_io.json", "train_io.json")


def leftovers(directory: Path, names) -> list:
    return [n for n in names if (directory / n).exists()]


# ========================================================================================= unusable files

GOOD = {"id": "a", "input": "Um who wrote it?", "target": "Who wrote it?"}

# name -> (file name, content, regexes the message must match). Every message must also name the file.
UNUSABLE = {
    "invalid_json": ("broken.json", '[{"id": "a", "input": "Um who?", "target": "Who?"},\n'
                                    ' {"id": "b", "input": "Uh what?" "target": "What?"}]',
                     [r"invalid JSON at line 2, column \d+"]),
    "wrong_shape_top_level": ("scalar.json", '"just a string"',
                              [r"expected a JSON list of records", r"got a string"]),
    "wrong_shape_records": ("strings.json", ["Who wrote it?", "What is it?"], [r"record 0", r"got a string"]),
    "wrong_shape_disfl_value": ("rawbad.json", {"q1": {"original": "Who?", "disfluent": "Um who?"},
                                                "q2": ["not", "an", "object"]},
                                [r"record 'q2'", r"expected an object", r"got a list"]),
    "missing_field": ("missing.json", [GOOD, {"id": "b", "target": "What is it?"}],
                      [r"record 1 \(id 'b'\)", r"missing input field 'input'"]),
    "not_utf8": ("latin1.json", '[{"id": "a", "input": "Caf\xe9 um?", "target": "Caf\xe9?"}]'.encode("latin-1"),
                 [r"not valid UTF-8 at byte offset 26", r"0xe9"]),
    "csv_renamed_columns": ("renamed.csv", "qid,messy,clean\n1,Um who?,Who?\n",
                            [r"CSV has no input column", r"header found: \['qid', 'messy', 'clean'\]"]),
    "csv_missing_column": ("nocol.csv", "id,target\n1,Who?\n", [r"no input column", r"\['id', 'target'\]"]),
    "empty_file": ("empty.jsonl", "", [r"the file is empty"]),
    "nothing_usable": ("allbad.json", [{"id": "a", "input": "  ", "target": "Who?"},
                                       {"id": "b", "input": None, "target": "What?"}],
                       [r"'a'|\(a\)", r"input|empty"]),
    "not_found": ("does-not-exist.json", None, [r"file not found"]),
}


def _unusable_file(tmp_path, case) -> Path:
    name, content, _ = UNUSABLE[case]
    return tmp_path / name if content is None else write(tmp_path / name, content)


@pytest.mark.parametrize("case", sorted(UNUSABLE))
def test_unusable_file_prepare(tmp_path, case):
    src = _unusable_file(tmp_path, case)
    out = tmp_path / "dataset"
    r = run_cli("prepare", "--source", src, "--out", out)
    assert_error(r, re.escape(src.name), *UNUSABLE[case][2])
    assert leftovers(out, SPLITS) == []
    # also as the --valid file next to a good training file: still nothing written
    good = write(tmp_path / "good-train.json", canon(6, prefix="g"))
    r = run_cli("prepare", "--source", good, "--valid", src, "--out", out)
    assert_error(r, re.escape(src.name))
    assert leftovers(out, SPLITS) == []


@pytest.mark.parametrize("case", sorted(UNUSABLE))
def test_unusable_file_evaluate(tmp_path, case):
    src = _unusable_file(tmp_path, case)
    out = tmp_path / "outputs" / "run"
    r = run_cli("evaluate", "--model", "copy", "--data", src, "--out", out)
    assert_error(r, re.escape(src.name), *UNUSABLE[case][2])
    assert leftovers(out, EVAL_FILES) == []


@pytest.mark.parametrize("case", sorted(UNUSABLE))
def test_unusable_file_rewrite(tmp_path, case, tiny_model):
    src = _unusable_file(tmp_path, case)
    out = tmp_path / "out" / "rewrites.jsonl"
    r = run_cli("rewrite", "--model", tiny_model, "--input", src, "--output", out)
    assert_error(r, re.escape(src.name), *UNUSABLE[case][2])
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()


def test_nothing_usable_names_reasons_and_ids(tmp_path):
    src = write(tmp_path / "allbad.json", [{"id": "a", "input": "  ", "target": "Who?"},
                                           {"id": "b", "input": None, "target": "What?"}])
    r = run_cli("prepare", "--source", src, "--out", tmp_path / "out")
    assert_error(r, r"no usable records", r"empty: 1 \(a\)", r"not_a_string: 1 \(b\)")


# ================================================================================= bad records, good file

# id -> (record, reason, field). Ids are chosen so a report line names them unambiguously.
BAD_RECORDS = {
    "null_input": ({"id": "r-null", "input": None, "target": "T?"}, "not_a_string", "input"),
    "number_input": ({"id": "r-num", "input": 42, "target": "T?"}, "not_a_string", "input"),
    "list_input": ({"id": "r-list", "input": ["Q?"], "target": "T?"}, "not_a_string", "input"),
    "number_target": ({"id": "r-numtgt", "input": "Q one?", "target": 7}, "not_a_string", "target"),
    "empty_input": ({"id": "r-empty", "input": "", "target": "T?"}, "empty", "input"),
    "blank_input": ({"id": "r-blank", "input": " \t\n ", "target": "T?"}, "empty", "input"),
    "duplicate_id": ({"id": "g0", "input": "Another one?", "target": "Another?"}, "duplicate_id", "id"),
    "too_long": ({"id": "r-long", "input": "why " * 600 + "?", "target": "Why?"}, "too_long", "input"),
}


def _file_with(records, n_good=6):
    good = canon(n_good, prefix="g")
    return good[:2] + records + good[2:]


def test_bad_records_skipped_and_named_prepare(tmp_path):
    src = write(tmp_path / "train.json", _file_with([rec for rec, _, _ in BAD_RECORDS.values()]))
    valid = write(tmp_path / "valid.json", canon(3, prefix="v"))
    out = tmp_path / "dataset"
    r = run_cli("prepare", "--source", src, "--valid", valid, "--out", out, "--no-typo-eval")
    assert r.returncode == 0, r.stderr
    expected: dict = {}
    for rec, reason, _ in BAD_RECORDS.values():
        expected.setdefault(reason, []).append(rec["id"])
    for reason, ids in expected.items():
        line = next((ln for ln in r.stdout.splitlines() if f"skipped ({reason}): {len(ids)} " in ln), None)
        assert line is not None, f"no report line for {reason}:\n{r.stdout}"
        for rid in ids:
            assert rid in line, (rid, line)
    assert re.search(rf"train: 6 kept of {6 + len(BAD_RECORDS)} read", r.stdout), r.stdout
    kept = json.loads((out / "train.json").read_text())
    assert [x["id"] for x in kept] == [f"g{i}" for i in range(6)]
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["splits"]["train"]["n_skipped"] == len(BAD_RECORDS)


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_bad_record_strict_prepare(tmp_path, case):
    rec, _, fld = BAD_RECORDS[case]
    src = write(tmp_path / "strict.json", _file_with([rec]))
    out = tmp_path / "dataset"
    r = run_cli("prepare", "--source", src, "--out", out, "--strict")
    assert_error(r, r"strict\.json", r"record 2", re.escape(repr(rec["id"])), re.escape(f"field {fld!r}"))
    assert leftovers(out, SPLITS) == []


@pytest.mark.parametrize("case", ["null_input", "blank_input", "duplicate_id", "too_long"])
def test_bad_record_strict_rewrite_and_evaluate(tmp_path, case, tiny_model):
    rec, _, fld = BAD_RECORDS[case]
    src = write(tmp_path / "recs.json", _file_with([rec]))
    out = tmp_path / "out" / "rw.jsonl"
    r = run_cli("rewrite", "--model", tiny_model, "--input", src, "--output", out, "--strict")
    assert_error(r, r"recs\.json", r"record 2", re.escape(repr(rec["id"])), re.escape(f"field {fld!r}"))
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()
    # evaluation data is a canonical split: any bad record stops it, named the same way
    r = run_cli("evaluate", "--model", "copy", "--data", src, "--out", tmp_path / "ev")
    assert_error(r, r"recs\.json", r"record 2", re.escape(repr(rec["id"])), re.escape(f"field {fld!r}"))
    assert leftovers(tmp_path / "ev", EVAL_FILES) == []


@pytest.fixture(scope="module")
def messy_rewrite(tiny_run, tmp_path_factory):
    """One rewrite run over a JSON Lines file that starts with a BOM, has a BOM inside a question and holds
    every kind of bad record (the model is loaded once for both tests below)."""
    tmp = tmp_path_factory.mktemp("messy-rewrite")
    bad = [{"id": rec["id"], "question": rec["input"]} for rec, _, fld in BAD_RECORDS.values() if fld != "target"]
    good = [{"id": "g0", "question": BOM + "Um what uh is question 0?"},
            {"id": "g1", "question": "Uh what is " + BOM + "question 1?"},
            {"id": "g2", "question": "What is question 2?"}]
    rows = good[:1] + bad + good[1:]
    src = write(tmp / "questions.jsonl", (BOM + "".join(json.dumps(r) + "\n" for r in rows)).encode("utf-8"))
    out = tmp / "rw.jsonl"
    r = run_cli("rewrite", "--model", tiny_run, "--input", src, "--output", out, "--max-new-tokens", "4")
    return r, out, len(bad)


def test_bad_records_skipped_and_named_rewrite(messy_rewrite):
    r, out, n_bad = messy_rewrite
    assert r.returncode == 0, r.stderr
    assert re.search(rf"read {n_bad + 3}, kept 3, skipped {n_bad}", r.stderr), r.stderr
    assert re.search(r"skipped not_a_string: 3: r-null, r-num, r-list", r.stderr), r.stderr
    assert re.search(r"skipped empty: 2: r-empty, r-blank", r.stderr), r.stderr
    assert re.search(r"skipped duplicate_id: 1: g0", r.stderr), r.stderr
    assert re.search(r"skipped too_long: 1: r-long", r.stderr), r.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x["id"] for x in rows] == ["g0", "g1", "g2"]


# ===================================================================================================== BOM

def test_bom_prepare(tmp_path):
    rows = canon(8, prefix="g")
    rows[3]["input"] = BOM + "Um what " + BOM + "is it?"
    src = write(tmp_path / "bom.json", (BOM + json.dumps(rows)).encode("utf-8"))
    csv = write(tmp_path / "bom.csv", (BOM + "id,input,target\nv1,Er who is it?,Who is it?\n"
                                       "v2,\ufeffUh where?,Where?\n").encode("utf-8"))
    out = tmp_path / "dataset"
    r = run_cli("prepare", "--source", src, "--valid", csv, "--out", out)
    assert r.returncode == 0, r.stderr
    for name in ("train.json", "valid.json", "valid_typo.json"):
        text = (out / name).read_text(encoding="utf-8")
        assert BOM not in text, name
    assert [x["id"] for x in json.loads((out / "valid.json").read_text())] == ["v1", "v2"]
    train = {x["id"]: x for x in json.loads((out / "train.json").read_text())}
    assert train["g3"]["input"] == "Um what is it?"
    assert re.search(r"cleaned \(bom\): 1 \[g3\]", r.stdout) and re.search(r"cleaned \(bom\): 1 \[v2\]", r.stdout)


def test_bom_rewrite_input(messy_rewrite):
    r, out, _ = messy_rewrite
    assert r.returncode == 0, r.stderr
    text = out.read_text(encoding="utf-8")
    assert BOM not in text and "\\ufeff" not in text
    rows = [json.loads(line) for line in text.splitlines()]
    assert [(x["id"], x["input"]) for x in rows] == [
        ("g0", "Um what uh is question 0?"), ("g1", "Uh what is question 1?"), ("g2", "What is question 2?")]


# ============================================================================================ config errors

def _no_run_dir(root: Path) -> bool:
    return not root.exists() or not any(root.iterdir())


# name -> (extra args, yaml text or None, regexes). Run through both entry points.
CONFIG_ERRORS = {
    "unknown_yaml_key": ([], "learning_rat: 1.0e-4\n", [r"unknown config key 'learning_rat'",
                                                         r"did you mean 'learning_rate'\?"]),
    "unknown_yaml_key_far": ([], "epochs: 3\n", [r"unknown config key 'epochs'", r"num_epochs"]),
    "unknown_cli_override": (["--lr", "1e-4"], None, [r"unrecognized arguments: --lr 1e-4"]),
    "batch_size_not_int": (["--batch-size", "abc"], None, [r"batch_size: expected int, got 'abc'"]),
    "lora_targets_number": ([], "method: lora\nlora_targets: 3\n", [r"lora_targets: expected list, got 3"]),
    "bool_garbage": (["--gradient-checkpointing", "maybe"], None,
                     [r"gradient_checkpointing: expected bool, got 'maybe'"]),
    "learning_rate_zero": (["--learning-rate", "0"], None, [r"learning_rate: must be > 0, got 0\.0"]),
    "learning_rate_negative": (["--learning-rate=-1e-4"], None, [r"learning_rate: must be > 0, got -0\.0001"]),
    "lora_rank_zero": (["--method", "lora", "--lora-r", "0"], None, [r"lora_r: must be >= 1, got 0"]),
    "max_steps_zero": (["--max-steps", "0"], None, [r"max_steps: must be -1 .* or >= 1, got 0"]),
    "method_unknown": (["--method", "dora"], None, [r"method: 'dora' is not one of full, lora, qlora"]),
    "config_not_found": (["--config", "no/such/config.yaml"], None, [r"config file not found"]),
    "yaml_invalid": ([], "batch_size: [1, 2\n", [r"not valid YAML"]),
}


@pytest.mark.parametrize("entry", ["train", "finetune.py"])
@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_config_errors(tmp_path, case, entry, tiny_model):
    extra, yaml_text, patterns = CONFIG_ERRORS[case]
    root = tmp_path / "weights"
    cfg = write(tmp_path / f"{case}.yaml", yaml_text) if yaml_text is not None else SMOKE
    args = ["--config", cfg, "--model", tiny_model, "--output-root", root, *extra]
    r = run_cli(*([entry] if entry == "train" else [ROOT / entry]), *args)
    if case == "unknown_yaml_key":
        patterns = [*patterns, re.escape(cfg.name)]
    assert_error(r, *patterns)
    assert _no_run_dir(root)


# ================================================================== safety, paths, output dirs, resume

def _unwritable(tmp_path: Path) -> Path:
    """A directory this process cannot write to: a read-only dir, or (as root, where chmod does not stop
    writes) a path under a regular file, which nobody can create."""
    ro = tmp_path / "readonly"
    ro.mkdir()
    ro.chmod(0o555)
    if not os.access(ro, os.W_OK):
        return ro / "sub"
    ro.chmod(0o755)
    afile = write(tmp_path / "a-regular-file", "not a directory")
    return afile / "sub"


@pytest.fixture
def restore_modes(tmp_path):
    yield
    for p in tmp_path.rglob("*"):
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)


@pytest.mark.parametrize("name", ["../../x", "../outside", "a/../../x"])
def test_run_name_escaping_output_root_refused(tmp_path, name):
    root = tmp_path / "one" / "weights"
    for entry in (["train"], [ROOT / "finetune.py"]):
        r = run_cli(*entry, "--config", SMOKE, "--output-root", root, "--run-name", name)
        assert_error(r, r"run_name: invalid run name", re.escape(repr(name)), r"outside")
    assert sorted(p.name for p in tmp_path.rglob("*")) == [], list(tmp_path.rglob("*"))


def test_absolute_run_name_refused(tmp_path):
    target = tmp_path / "abs-run"
    r = run_cli("train", "--config", SMOKE, "--output-root", tmp_path / "weights", "--run-name", target)
    assert_error(r, r"run_name: invalid run name", r"plain relative name")
    assert not target.exists() and not (tmp_path / "weights").exists()


def test_trust_remote_code_off_by_default(tmp_path, tiny_model, monkeypatch):
    import inspect

    import transformers

    from qrewrite import models
    from qrewrite.cli.main import build_parser
    from qrewrite.config import TrainConfig, load_config
    from qrewrite.eval.options import EvaluateOptions
    from qrewrite.infer.rewriter import load_rewriter

    assert TrainConfig().trust_remote_code is False and load_config(SMOKE).trust_remote_code is False
    assert EvaluateOptions(model="m", data="d", out="o").trust_remote_code is False  # evaluate_model's options
    for func in (models.load_tokenizer, models.load_model, models.load_for_inference, load_rewriter):
        assert inspect.signature(func).parameters["trust_remote_code"].default is False, func.__name__
    parser = build_parser()
    assert parser.parse_args(["rewrite", "--model", "m", "q"]).trust_remote_code is False
    assert parser.parse_args(["evaluate", "--model", "m", "--data", "d", "--out", "o"]).trust_remote_code is False
    assert parser.parse_args(["train"]).cfg_trust_remote_code is None  # -> the config's False
    # the load path passes trust_remote_code=False to transformers
    seen = []
    for cls in (transformers.AutoModelForCausalLM, transformers.AutoTokenizer):
        real = cls.from_pretrained.__func__

        def spy(klass, *a, _real=real, **kw):
            seen.append((klass.__name__, kw.get("trust_remote_code")))
            return _real(klass, *a, **kw)
        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    models.load_for_inference(str(tiny_model))
    assert sorted(seen) == [("AutoModelForCausalLM", False), ("AutoTokenizer", False)]


def test_missing_model_path(tmp_path):
    r = run_cli("rewrite", "--model", tmp_path / "no-such-model", "Um who?")
    assert_error(r, r"model path .*no-such-model does not exist", r"smollm2")
    r = run_cli("rewrite", "--model", "./no-such-model", "Um who?")
    assert_error(r, r"no-such-model does not exist")
    d = tmp_path / "empty-dir"
    d.mkdir()
    r = run_cli("evaluate", "--model", d, "--data", SAMPLE / "valid.json", "--out", tmp_path / "ev")
    assert_error(r, r"holds no config\.json", r"adapter_config\.json")
    assert leftovers(tmp_path / "ev", EVAL_FILES) == []


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"},
                                 {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}],
                         ids=["HF_HUB_OFFLINE", "closed-endpoint"])
def test_hub_id_offline_fails_with_alternatives(tmp_path, env):
    # (how fast is checked in-process below: a subprocess's wall time mostly measures imports and CPU load)
    r = run_cli("rewrite", "--model", "qrewrite-tests/no-such-model", "Um who?",
                env={**env, "HF_HOME": str(tmp_path / "hf")})
    assert_error(r, r"cannot reach the Hugging Face hub", r"'qrewrite-tests/no-such-model'", r"--model smollm2",
                 r"local checkpoint directory")
    assert "Retrying" not in r.stderr


def test_hub_id_offline_fails_with_what_to_do_instead(monkeypatch):
    """No retry loop: the hub is probed once and the error names the offline alternatives."""
    from qrewrite.errors import ModelLoadError
    from qrewrite.models import hub_reachable, resolve_model_source
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_reachable() is False
    with pytest.raises(ModelLoadError, match=r"cannot reach the Hugging Face hub.*--model smollm2"):
        resolve_model_source("qrewrite-tests/no-such-model")
    # hub_reachable itself: one TCP connect to a closed local port
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert hub_reachable(timeout=3.0) is False
    with pytest.raises(ModelLoadError, match=r"cannot reach the Hugging Face hub.*local checkpoint directory"):
        resolve_model_source("qrewrite-tests/no-such-model")


def test_unwritable_output_dirs(tmp_path, tiny_model, restore_modes):
    bad = _unwritable(tmp_path)
    r = run_cli("prepare", "--source", SAMPLE / "train.json", "--out", bad)
    assert_error(r, r"cannot write to output directory", re.escape(str(bad)))
    r = run_cli("evaluate", "--model", "copy", "--data", SAMPLE / "valid.json", "--out", bad / "run")
    assert_error(r, r"cannot write to output directory", re.escape(str(bad)))
    r = run_cli("rewrite", "--model", tiny_model, "--input", SAMPLE / "valid.json", "--output", bad / "o.jsonl")
    assert_error(r, r"cannot write to output directory", re.escape(str(bad)))
    assert not bad.exists()


# ------------------------------------------------------------- training errors (import transformers: slow)

@pytest.fixture(scope="module")
def training_errors(tiny_model, tiny_run, tmp_path_factory):
    """Run every training-time refusal at once (each subprocess spends ~9 s importing transformers)."""
    tmp = tmp_path_factory.mktemp("train-errors")
    ro = tmp / "ro"
    ro.mkdir()
    bad_root = _unwritable(ro)
    run_json = (tiny_run / "run.json").read_bytes()
    base = ["--config", SMOKE, "--model", tiny_model]
    calls = {
        "split_too_small": (["train", *base, "--output-root", tmp / "w1", "--batch-size", "1000"], {}),
        "missing_model": (["train", "--config", SMOKE, "--model", tmp / "nope", "--output-root", tmp / "w2"], {}),
        "lora_target": (["train", *base, "--output-root", tmp / "w3", "--method", "lora",
                         "--lora-targets", "q_proj", "attn_qkv"], {}),
        "unwritable": (["train", *base, "--output-root", bad_root], {}),
        "resume_without_checkpoint": (["train", *base, "--output-root", tmp / "w4", "--resume"], {}),
        "existing_complete_run": (["train", *base, "--output-root", tiny_run.parent, "--run-name", tiny_run.name],
                                  {}),
    }
    results = run_parallel(calls, workers=4)
    for p in tmp.rglob("*"):
        if p.is_dir():
            p.chmod(0o755)
    assert (tiny_run / "run.json").read_bytes() == run_json  # the complete run was not touched
    return tmp, bad_root, results


TRAIN_ERRORS = {
    "split_too_small": ("w1", [r"300 training examples is too few for batch_size 1000"]),
    "missing_model": ("w2", [r"model path .*nope does not exist", r"smollm2"]),
    "lora_target": ("w3", [r"LoRA target\(s\) \['attn_qkv'\] match no linear layer",
                           r"available: .*down_proj.*q_proj.*v_proj"]),
    "unwritable": (None, [r"cannot write to output directory"]),
    "resume_without_checkpoint": ("w4", [r"--resume: no checkpoint in .*w4/smoke", r"start without --resume"]),
    "existing_complete_run": (None, [r"already holds a run", r"--resume", r"--run-name"]),
}


@pytest.mark.parametrize("case", sorted(TRAIN_ERRORS))
def test_training_refusals(training_errors, case):
    tmp, bad_root, results = training_errors
    root, patterns = TRAIN_ERRORS[case]
    assert_error(results[case], *patterns)
    if root is not None:
        assert _no_run_dir(tmp / root), list((tmp / root).rglob("*"))
    if case == "unwritable":
        assert not bad_root.exists()


def test_run_names_stay_inside_their_root_but_a_symlinked_run_directory_is_allowed(tmp_path):
    from qrewrite.errors import ConfigError
    from qrewrite.files import safe_join

    root, elsewhere = tmp_path / "weights", tmp_path / "other-disk" / "run"
    elsewhere.mkdir(parents=True)
    root.mkdir()
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    assert safe_join(root, "linked") == root / "linked"  # e.g. weights/<run> -> a bigger disk
    assert safe_join(root, "group/run") == root / "group" / "run"
    for name in ("../escape", "a/../../escape", "..", ".", "", "/abs", " padded"):
        with pytest.raises(ConfigError, match="run name"):
            safe_join(root, name)
