"""The typo-robust recipe's pieces: typo'd copies at spread rates, checkpoints kept by sample ROUGE-L, few-shot
prompts for an untuned model, blind-test output without inputs, and the ablation table."""

import json

import pytest
from helpers import SAMPLE, run_cli, smoke_config

from qrewrite.config import load_config
from qrewrite.data.records import load_split
from qrewrite.errors import ConfigError
from qrewrite.eval.ablations import ablation_table, load_spec, write_ablations
from qrewrite.infer.decoding import Decoding
from qrewrite.models import load_tokenizer
from qrewrite.prompt import PromptSpec, build_prompt, completion_text
from qrewrite.train.trainer import train, training_records

# ---- typo'd copies -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("copies,rate,top,expected", [
    (3, 0.05, 0.15, [0.05, 0.10, 0.15]), (2, 0.05, 0.0, [0.05, 0.05]), (1, 0.05, 0.2, [0.05]), (0, 0.05, 0.2, [])])
def test_typo_copies_get_rates_spread_up_to_typo_rate_max(copies, rate, top, expected):
    cfg = load_config(None, {"typo_copies": copies, "typo_rate": rate, "typo_rate_max": top})
    assert cfg.typo_copy_rates() == pytest.approx(expected)


def test_heavier_copies_carry_more_edits_and_every_clean_example_stays(tmp_path):
    cfg = load_config(None, {"train_file": str(SAMPLE / "train.json"), "valid_file": str(SAMPLE / "valid.json"),
                             "typo_copies": 2, "typo_rate": 0.02, "typo_rate_max": 0.3, "batch_size": 1})
    originals = load_split(SAMPLE / "train.json")
    train_records, _ = training_records(cfg)
    assert train_records[:len(originals)] == originals
    light = [r for r in train_records if r["id"].endswith("#typo1")]
    heavy = [r for r in train_records if r["id"].endswith("#typo2")]
    assert len(light) == len(heavy) == len(originals)

    def changed_chars(records):
        return sum(sum(a != b for a, b in zip(r["input"], o["input"])) + abs(len(r["input"]) - len(o["input"]))
                   for r, o in zip(records, originals))
    assert changed_chars(heavy) > 2 * changed_chars(light)
    assert all(r["target"] == o["target"] for r, o in zip(heavy, originals))


@pytest.mark.parametrize("overrides,named", [
    ({"typo_rate_max": 0.01}, "typo_rate_max"), ({"best_metric": "bleu"}, "best_metric"),
    ({"best_metric": "rougeL_sample_typo", "eval_sample": 0}, "eval_sample")])
def test_impossible_recipe_settings_are_refused_by_name(overrides, named):
    with pytest.raises(ConfigError, match=named):
        load_config(None, overrides)


# ---- checkpoint selection --------------------------------------------------------------------------------------

@pytest.mark.parametrize("best_metric", ["rougeL_sample_mean", "loss"])
def test_the_kept_checkpoint_is_the_best_by_the_chosen_metric(tiny_model, tmp_path, best_metric):
    run_dir = train(smoke_config(tiny_model, tmp_path, run_name="sel", max_steps=6, eval_steps=2, save_steps=2,
                                 save_total_limit=0, eval_sample=4, typo_copies=1, best_metric=best_metric))
    log = json.loads((run_dir / "trainer_log.json").read_text())
    scored = [(e["step"], e[f"eval_{best_metric}"]) for e in log if f"eval_{best_metric}" in e]
    assert [s for s, _ in scored] == [2, 4, 6]
    if best_metric == "loss":
        best_step = min(scored, key=lambda s: (s[1], s[0]))[0]
    else:  # the Trainer keeps the first of equal scores
        best_step = max(scored, key=lambda s: (s[1], -s[0]))[0]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["best_checkpoint"].endswith(f"checkpoint-{best_step}")
    sampled = [e for e in log if "eval_rougeL_sample_typo" in e]
    assert sampled and all(e["eval_rougeL_sample_mean"] == pytest.approx(
        (e["eval_rougeL_sample"] + e["eval_rougeL_sample_typo"]) / 2) for e in sampled)


# ---- few-shot --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["chat", "minimal"])
def test_few_shot_pairs_are_earlier_turns_before_the_question(tiny_model, fmt):
    tok = load_tokenizer(str(tiny_model))
    shots = (("Who um who won?", "Who won?"), ("When no where is it?", "Where is it?"))
    plain, few = PromptSpec(fmt), PromptSpec(fmt, examples=shots)
    prompt = build_prompt(tok, "What uh what is it?", few)
    positions = [prompt.index(text) for text in ("Who um who won?", "Who won?", "When no where is it?",
                                                 "Where is it?", "What uh what is it?")]
    assert positions == sorted(positions)
    assert prompt.endswith(build_prompt(tok, "What uh what is it?", plain).split("What uh what is it?")[-1])
    # the answer still completes the same way: the shots change the prompt only
    assert completion_text(tok, "Q?", "A?", few) == completion_text(tok, "Q?", "A?", plain)


def test_few_shot_evaluation_records_its_shots(tiny_model, tmp_path):
    r = run_cli("evaluate", "--model", tiny_model, "--data", SAMPLE / "valid.json", "--out", tmp_path / "fs",
                "--few-shot", "3", "--shots-from", SAMPLE / "train.json", "--limit", "4", "--max-new-tokens", "4")
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads((tmp_path / "fs" / "metrics.json").read_text())
    train_ids = {x["id"] for x in load_split(SAMPLE / "train.json")}
    shots = result["eval"]["few_shot"]
    assert shots["k"] == 3 and len(set(shots["ids"])) == 3 and set(shots["ids"]) <= train_ids
    assert result["run"]["method"] == "few-shot"


def test_few_shot_needs_a_model_and_enough_pairs(tmp_path):
    r = run_cli("evaluate", "--model", "copy", "--data", SAMPLE / "valid.json", "--out", tmp_path / "c",
                "--few-shot", "2", "--shots-from", SAMPLE / "train.json")
    assert r.returncode == 2 and "--few-shot" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("evaluate", "--model", "copy", "--data", SAMPLE / "valid.json", "--out", tmp_path / "c",
                "--few-shot", "100000", "--shots-from", SAMPLE / "train.json")
    assert r.returncode == 2 and "holds only" in r.stderr


# ---- decoding ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("option, decoding", [(("--num-beams", "2"), Decoding(num_beams=2)),
                                              (("--copy-bonus", "1.5"), Decoding(copy_bonus=1.5))],
                         ids=["beams", "copy-bonus"])
def test_decoding_is_recorded_and_not_reused_for_greedy(tiny_run, tmp_path, option, decoding):
    from qrewrite.eval.evaluate import reusable_evaluation
    data = SAMPLE / "valid.json"
    r = run_cli("evaluate", "--model", tiny_run, "--data", data, "--out", tmp_path / "ev", *option,
                "--limit", "4", "--max-new-tokens", "4")
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert result["eval"]["decoding"] == decoding.name and option[0] in result["run"]["command"]
    assert decoding.name in ("beam search, 2 beams", "greedy, copy bonus 1.5")
    assert reusable_evaluation(tiny_run, data, tmp_path / "ev", limit=4, decoding=decoding) is None
    assert f"{decoding.name}, not greedy" in reusable_evaluation(tiny_run, data, tmp_path / "ev", limit=4)


def test_decoding_options_need_a_model(tmp_path):
    for command in (["evaluate", "--data", SAMPLE / "valid.json", "--out", tmp_path / "c"], ["rewrite", "Who um who?"]):
        for option, value in (("--num-beams", "3"), ("--copy-bonus", "1")):
            r = run_cli(*command, "--model", "rules", option, value)
            assert r.returncode == 2 and option in r.stderr and "Traceback" not in r.stderr


# ---- blind-test output -------------------------------------------------------------------------------------------

def test_no_input_writes_ids_and_predictions_only(tmp_path):
    src = tmp_path / "inputs.jsonl"
    src.write_text("".join(json.dumps({"id": f"q{i}", "input": f"Who um who is {i}?"}) + "\n" for i in range(5)))
    r = run_cli("rewrite", "--model", "rules", "--input", src, "--output", tmp_path / "out.jsonl", "--no-input",
                "--strict")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == [f"q{i}" for i in range(5)]
    assert all(set(row) == {"id", "prediction"} for row in rows)
    assert rows[0]["prediction"] == "Who is 0?"
    r = run_cli("rewrite", "--model", "rules", "--no-input", "Who um who?")
    assert r.returncode == 2 and "--no-input" in r.stderr


# ---- ablation table ----------------------------------------------------------------------------------------------

def _evaluation(root, name, data, rouge_l, em, steps=None):
    d = root / name / ("typo" if "typo" in data else "")
    d.mkdir(parents=True, exist_ok=True)
    (d / "metrics.json").write_text(json.dumps({
        "metrics": {"rougeL": rouge_l, "exact_match": em},
        "run": {"name": name, "model": "m", "method": "full", "data": data, "steps": steps}}))


SPEC = """
reference: ref
recommended: new
splits: {clean: "dev", typo: "dev (typo)"}
targets: {clean: {rougeL: 0.95}, typo: {exact_match: 0.5}}
notes: ["Line 2 has not been trained yet."]
lines:
  - {run: new, change: "more steps"}
  - {run: missing, change: "not run yet"}
  - {run: newer, change: "even more steps", against: new}
"""


def test_ablation_lines_show_differences_to_the_reference_and_targets(tmp_path):
    for name, clean, typo in (("ref", (0.90, 0.60), (0.70, 0.10)), ("new", (0.96, 0.70), (0.80, 0.35)),
                              ("newer", (0.97, 0.75), (0.85, 0.40))):
        _evaluation(tmp_path, name, "dev", *clean, steps=10)
        _evaluation(tmp_path, name, "dev (typo)", *typo, steps=10)
    (tmp_path / "ablations.yaml").write_text(SPEC)
    table = ablation_table(load_spec(tmp_path / "ablations.yaml"), tmp_path)
    new = next(line for line in table.splitlines() if line.startswith("| 1 |"))
    assert "0.960 (+0.0600)" in new and "70.0% (+10.0)" in new and "0.800 (+0.1000)" in new and "35.0% (+25.0)" in new
    assert "not evaluated" in next(line for line in table.splitlines() if line.startswith("| 2 |"))
    newer = next(line for line in table.splitlines() if line.startswith("| 3 |"))
    assert "vs line 1: even more steps" in newer and "0.970 (+0.0100)" in newer and "40.0% (+5.0)" in newer
    assert "\n- Line 2 has not been trained yet.\n" in table
    assert "clean ROUGE-L >= 0.950: 0.960, met" in table and "typo EM >= 50.0%: 35.0%, **not met**" in table
    written = write_ablations(tmp_path)
    assert written.read_text() == table


def test_a_bad_ablation_spec_is_one_error_naming_the_file(tmp_path):
    _evaluation(tmp_path, "ref", "dev", 0.9, 0.6)
    (tmp_path / "ablations.yaml").write_text("reference: ref\nsplits: {clean: dev}\nlines:\n  - {run: x}\n")
    r = run_cli("results", "--outputs", tmp_path)
    assert r.returncode == 2 and "ablations.yaml" in r.stderr and "line 1" in r.stderr
    assert "Traceback" not in r.stderr
    (tmp_path / "ablations.yaml").write_text("reference: ref\nsplits: {clean: dev}\nlines:\n"
                                             "  - {run: a, change: b, against: later}\n  - {run: later, change: c}\n")
    r = run_cli("results", "--outputs", tmp_path)
    assert r.returncode == 2 and "line 1: 'against' must name the run of an earlier line" in r.stderr
    (tmp_path / "ablations.yaml").write_text("reference: ref\nsplits: {clean: dev}\nnotes: [3]\nlines: []\n")
    r = run_cli("results", "--outputs", tmp_path)
    assert r.returncode == 2 and "ablations.yaml" in r.stderr and "'notes'" in r.stderr


def test_previously_recommended_must_be_a_list_of_run_names(tmp_path):
    _evaluation(tmp_path, "ref", "dev", 0.9, 0.6)
    spec = "reference: ref\nrecommended: ref\nsplits: {clean: dev}\nlines: []\n"
    (tmp_path / "ablations.yaml").write_text(spec + "previously_recommended: old-soup\n")
    r = run_cli("results", "--outputs", tmp_path)
    assert r.returncode == 2 and "ablations.yaml" in r.stderr and "'previously_recommended'" in r.stderr
    (tmp_path / "ablations.yaml").write_text(spec + "previously_recommended: [old-soup]\n")
    assert run_cli("results", "--outputs", tmp_path).returncode == 0
