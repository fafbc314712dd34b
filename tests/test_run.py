"""The run directory: what it knows, that a copied model directory rewrites as in place, and resume that extends."""

import json
import os
import shutil
import subprocess

import pytest
from helpers import SAMPLE, run_cli, smoke_config

from qrewrite.errors import ConfigError, RunStateError
from qrewrite.files import git_commit
from qrewrite.run import INFERENCE_FILE, Run, inference_settings

QUESTIONS = ["What year no sorry which city hosted the games?", "Who um who wrote the book?"]


@pytest.fixture(scope="module")
def minimal_run(tiny_model, tmp_path_factory):
    """A complete 4-step full fine-tune in the minimal prompt format."""
    from qrewrite.train.trainer import train
    cfg = smoke_config(tiny_model, tmp_path_factory.mktemp("weights"), run_name="minimal", max_steps=4,
                       save_steps=2, eval_steps=2, prompt_format="minimal")
    return train(cfg)


def test_run_knows_its_layout(minimal_run):
    run = Run(minimal_run)
    assert run.is_complete() and run.status == "complete"
    assert run.config().prompt_format == "minimal"
    assert run.final_model() == minimal_run / "model"
    assert run.last_checkpoint().endswith("checkpoint-4")
    assert Run.owning(minimal_run / "model").path == minimal_run
    assert Run.owning(minimal_run.parent) is None
    assert [e for e in run.trainer_log() if "loss" in e]
    saved = json.loads((minimal_run / "model" / INFERENCE_FILE).read_text())
    assert saved["prompt_format"] == "minimal" and saved["max_new_tokens"] == 8


def test_generation_config_stops_at_end_of_turn(minimal_run):
    from qrewrite.models import load_tokenizer
    from qrewrite.prompt import end_of_turn_ids
    generation = json.loads((minimal_run / "model" / "generation_config.json").read_text())
    tok = load_tokenizer(str(minimal_run / "model"))
    assert set(end_of_turn_ids(tok)) <= set(generation["eos_token_id"] if isinstance(generation["eos_token_id"], list)
                                            else [generation["eos_token_id"]])


def test_copied_model_directory_rewrites_as_in_place(minimal_run, tmp_path):
    from qrewrite.infer.rewriter import load_rewriter
    elsewhere = tmp_path / "somewhere" / "my-model"
    shutil.copytree(minimal_run / "model", elsewhere)
    assert Run.owning(elsewhere) is None  # no run.json, no config.yaml beside it
    assert inference_settings(elsewhere)["prompt"].format == "minimal"
    in_place = load_rewriter(str(minimal_run))
    copied = load_rewriter(str(elsewhere))
    assert in_place.prompt == copied.prompt and in_place.max_new_tokens == copied.max_new_tokens == 8
    assert copied.rewrite(QUESTIONS) == in_place.rewrite(QUESTIONS)
    # without the saved settings it would prompt differently (the chat format, system turn and all)
    (elsewhere / INFERENCE_FILE).unlink()
    assert inference_settings(elsewhere)["prompt"].format == "chat"


def test_plain_transformers_prompt_matches_the_minimal_format(minimal_run):
    """The saved tokenizer's own chat template renders a bare user turn exactly as training prompted."""
    from transformers import AutoTokenizer

    from qrewrite.prompt import PromptSpec, build_prompt
    tok = AutoTokenizer.from_pretrained(minimal_run / "model")
    plain = tok.apply_chat_template([{"role": "user", "content": QUESTIONS[0]}], tokenize=False,
                                    add_generation_prompt=True)
    assert plain == build_prompt(tok, QUESTIONS[0], PromptSpec("minimal"))


def test_resume_extends_a_finished_run(tiny_model, tmp_path):
    from qrewrite.train.trainer import train
    base = dict(run_name="longer", save_steps=2, eval_steps=2)
    run_dir = train(smoke_config(tiny_model, tmp_path, max_steps=2, **base))
    first_time = Run(run_dir).info()["train_time_s"]
    with pytest.raises(RunStateError, match="already holds a run"):
        train(smoke_config(tiny_model, tmp_path, max_steps=4, **base))
    train(smoke_config(tiny_model, tmp_path, max_steps=4, logging_steps=2, **base), resume=True)
    info = Run(run_dir).info()
    assert info["status"] == "complete" and info["steps"] == 4
    (change,) = info["resumes"]
    assert change["from_checkpoint"] == "checkpoint-2"
    # the training time is the model's: both invocations, not the last alone
    assert change["train_time_s_before"] == first_time and info["train_time_s"] > first_time
    assert change["changed"] == {"max_steps": [2, 4], "logging_steps": [1, 2]}
    assert Run(run_dir).config().max_steps == 4


@pytest.mark.parametrize("field,value", [("learning_rate", 1e-2), ("prompt_format", "minimal"),
                                         ("typo_copies", 1), ("lora_r", 8)])
def test_resume_refuses_what_changes_the_model_or_data(tiny_model, tmp_path, field, value):
    from qrewrite.train.trainer import train
    base = dict(run_name="r", max_steps=2, save_steps=2, eval_steps=2)
    train(smoke_config(tiny_model, tmp_path, **base))
    with pytest.raises(ConfigError, match=f"cannot change {field}"):
        train(smoke_config(tiny_model, tmp_path, **base, **{field: value}), resume=True)


def test_resume_without_a_checkpoint_is_a_run_state_error(tiny_model, tmp_path):
    r = run_cli("train", "--config", "configs/smoke.yaml", "--model", tiny_model, "--output-root", tmp_path,
                "--run-name", "nothing", "--train-file", SAMPLE / "train.json", "--valid-file",
                SAMPLE / "valid.json", "--resume")
    assert r.returncode == 2 and "no checkpoint" in r.stderr and "Traceback" not in r.stderr


def test_plain_transformers_rewrites_as_qrewrite(minimal_run):
    """model/ works without this package: its tokenizer's chat template and generation config are enough."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qrewrite.infer.rewriter import load_rewriter
    model_dir = minimal_run / "model"
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    plain = []
    for question in QUESTIONS:
        ids = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=8, do_sample=False)
        plain.append(tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    assert plain == load_rewriter(str(minimal_run)).rewrite(QUESTIONS)


def test_model_card_states_what_was_measured(minimal_run, tmp_path):
    import yaml

    from qrewrite.eval.evaluate import evaluate_model
    card = (minimal_run / "model" / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["license"] == "apache-2.0" and front["language"] == ["en"] and front["datasets"]
    assert front["base_model"] and front["model-index"][0]["results"] == []
    assert "Not evaluated yet" in card and "**minimal**" in card and "apply_chat_template" in card
    result = evaluate_model(str(minimal_run), SAMPLE / "valid.json", tmp_path / "eval", data_label="sample valid",
                            show_progress=False)
    card = (minimal_run / "model" / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    (entry,) = front["model-index"][0]["results"]
    assert entry["dataset"]["name"] == "sample valid"
    rouge = next(m["value"] for m in entry["metrics"] if m["name"] == "ROUGE-L")
    assert rouge == round(result["metrics"]["rougeL"], 4)
    assert f"| sample valid | {result['metrics']['n']} |" in card


def test_push_to_hub_fails_at_once_offline(minimal_run):
    r = run_cli("push", "--model", minimal_run, "--push-to-hub", "someone/qrewrite-test",
                env={"HF_HUB_OFFLINE": "1"}, timeout=60)
    assert r.returncode == 2 and "cannot reach the Hugging Face hub" in r.stderr and "nothing was uploaded" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli("push", "--model", minimal_run.parent, "--push-to-hub", "someone/x", timeout=60)
    assert r.returncode == 2 and "holds no model" in r.stderr


def test_commit_is_dirty_for_code_changes_not_for_outputs(tmp_path):
    git = shutil.which("git")
    if git is None:
        pytest.fail("git is needed to record the commit of a run")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    def sh(*args):
        subprocess.run([git, *args], cwd=tmp_path, check=True, capture_output=True, env={**os.environ, **env})
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "prepare.log").write_text("# commit a\n")
    (tmp_path / "train.py").write_text("x = 1\n")
    sh("init", "-q")
    sh("add", "-A")
    sh("commit", "-qm", "start")
    clean = git_commit(tmp_path)
    assert len(clean) == 40 and not clean.endswith("+dirty")
    (tmp_path / "outputs" / "prepare.log").write_text("# commit b\n")  # a re-logged product
    assert git_commit(tmp_path) == clean
    (tmp_path / "train.py").write_text("x = 2\n")  # the code that runs
    assert git_commit(tmp_path) == clean + "+dirty"
