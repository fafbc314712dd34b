"""`qrewrite average`: a run whose weights are the weighted mean of fine-tuned models (a model soup)."""

import json
import re
import shutil

import pytest
import torch
import yaml
from helpers import ROOT, SAMPLE, run_cli, smoke_config
from safetensors.torch import load_file, save_file

from qrewrite.config import AverageConfig, load_average_config
from qrewrite.errors import ConfigError, ModelLoadError, RunStateError
from qrewrite.models import load_tokenizer
from qrewrite.prompt import PromptSpec, build_prompt, end_of_turn_ids
from qrewrite.run import Run
from qrewrite.train.soup import average_models


def perturbed_copy(run_dir, dest, scale=0.05, seed=1):
    """Another "fine-tune" of the same start: the run copied, every weight moved by seeded noise."""
    shutil.copytree(run_dir, dest)
    weights = dest / "model" / "model.safetensors"
    gen = torch.Generator().manual_seed(seed)
    tensors = {k: v + scale * torch.randn(v.shape, generator=gen) for k, v in load_file(weights).items()}
    save_file(tensors, weights, metadata={"format": "pt"})
    info = json.loads((dest / "run.json").read_text())
    (dest / "run.json").write_text(json.dumps({**info, "run_name": dest.name, "git_commit": "abc123"}))
    return dest


def recipe(tmp_path, models, run_name="soup", **extra):
    path = tmp_path / f"{run_name}.yaml"
    path.write_text(yaml.safe_dump({"run_name": run_name, "models": {str(k): v for k, v in models.items()},
                                    "output_root": str(tmp_path / "w"), **extra}, sort_keys=False))
    return path


def test_each_tensor_is_the_weighted_mean_and_the_run_works_like_a_trained_one(tiny_run, tmp_path):
    other = perturbed_copy(tiny_run, tmp_path / "other")
    cfg = load_average_config(recipe(tmp_path, {tiny_run: 3, other / "model": 1}))
    run_dir = average_models(cfg)

    a, b = load_file(tiny_run / "model" / "model.safetensors"), load_file(other / "model" / "model.safetensors")
    soup = load_file(run_dir / "model" / "model.safetensors")
    assert soup.keys() == a.keys()
    for key in a:
        assert soup[key].dtype == a[key].dtype
        torch.testing.assert_close(soup[key], 0.75 * a[key] + 0.25 * b[key])
    assert not torch.equal(soup[next(iter(a))], a[next(iter(a))])

    run = Run(run_dir)
    info = run.info()
    assert info["status"] == "complete" and info["method"] == "average"
    assert [p["weight"] for p in info["average"]] == [0.75, 0.25]
    assert [p["run"] for p in info["average"]] == ["tiny-full", "other"]
    assert info["average"][1]["git_commit"] == "abc123"
    assert info["max_new_tokens"] == json.loads((tiny_run / "model" / "qrewrite.json").read_text())["max_new_tokens"]
    assert isinstance(run.config(), AverageConfig) and run.config().models == cfg.models
    saved, trained = (json.loads((d / "model" / "qrewrite.json").read_text()) for d in (run_dir, tiny_run))
    assert saved == trained  # the same prompt and budget; base_model: the model both started from
    card = (run_dir / "model" / "README.md").read_text()
    assert "Made by averaging" in card and "0.75 x" in card and "tiny-full" in card
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")]  # no temporary directory left
    assert (tiny_run / "model" / "training_args.bin").exists()
    assert not (run_dir / "model" / "training_args.bin").exists()
    import os
    umask = os.umask(0)
    os.umask(umask)
    assert (run_dir / "model").stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's private 0700
    assert (run_dir / "model" / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask

    from transformers import AutoModelForCausalLM
    AutoModelForCausalLM.from_pretrained(run_dir / "model")  # plain transformers loads it

    out = tmp_path / "eval"
    done = run_cli("evaluate", "--model", run_dir, "--data", SAMPLE / "valid.json", "--out", out, "--limit", "3")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"]["method"] == "average" and metrics["run"]["model"] == "average of tiny-full + other"
    assert yaml.safe_load((out / "config.yaml").read_text())["models"] == cfg.models


def test_an_average_of_identical_models_rewrites_exactly_like_the_model(tiny_run, tmp_path):
    model = perturbed_copy(tiny_run, tmp_path / "model", scale=0.5)  # the smoke run alone answers ""
    twin = tmp_path / "twin"
    shutil.copytree(model, twin)
    run_dir = average_models(load_average_config(recipe(tmp_path, {model: 1, twin: 2})))
    question = "What year no sorry which city hosted the games?"
    original = run_cli("rewrite", "--model", model, question)
    averaged = run_cli("rewrite", "--model", run_dir, question)
    assert original.returncode == averaged.returncode == 0, averaged.stderr
    assert averaged.stdout == original.stdout and averaged.stdout.strip()


def test_the_cli_prints_the_ingredients_and_refuses_to_overwrite(tiny_run, tmp_path):
    path = recipe(tmp_path, {tiny_run: 1, perturbed_copy(tiny_run, tmp_path / "other"): 1})
    first = run_cli("average", "--config", path)
    assert first.returncode == 0, first.stderr
    assert "0.5 x" in first.stdout and str(tmp_path / "w" / "soup") in first.stdout
    again = run_cli("average", "--config", path)
    assert again.returncode == 2 and "already holds a run" in again.stderr and "Traceback" not in again.stderr


def test_an_interrupted_average_leaves_no_model_that_looks_complete(tiny_run, tmp_path, monkeypatch):
    import qrewrite.train.soup as average

    def fail(*args):
        raise KeyboardInterrupt("stopped")
    monkeypatch.setattr(average, "average_tensors", fail)
    other = perturbed_copy(tiny_run, tmp_path / "other")
    with pytest.raises(KeyboardInterrupt):
        average_models(load_average_config(recipe(tmp_path, {tiny_run: 1, other: 1})))
    run = Run(tmp_path / "w" / "soup")
    assert run.status == "interrupted" and not run.model_dir.exists()
    assert not [p for p in run.path.iterdir() if p.name.startswith(".model-")]
    with pytest.raises(RunStateError, match="not complete"):
        run.final_model()
    monkeypatch.undo()  # the same recipe again replaces what the interrupted average left
    average_models(load_average_config(recipe(tmp_path, {tiny_run: 1, other: 1})))
    assert run.is_complete() and (run.model_dir / "model.safetensors").is_file()


@pytest.mark.parametrize("change,message", [
    ("architecture", r"another architecture \(config.json\) .* \(num_hidden_layers differ\)"),
    ("prompt", r"another prompt \(qrewrite.json\)"),
    ("tokenizer", "must share a tokenizer"),
])
def test_models_that_cannot_be_averaged_are_named(tiny_run, tmp_path, change, message):
    other = perturbed_copy(tiny_run, tmp_path / "other")
    model = other / "model"
    if change == "architecture":  # use_cache is no architecture: checkpoints saved mid-training turn it off
        config = json.loads((model / "config.json").read_text())
        (model / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3,
                                                       "use_cache": not config.get("use_cache", True)}))
    elif change == "prompt":
        saved = json.loads((model / "qrewrite.json").read_text())
        (model / "qrewrite.json").write_text(json.dumps({**saved, "system_prompt": "Answer in French."}))
    else:
        (model / "tokenizer.json").write_text((model / "tokenizer.json").read_text().replace("<|im_start|>",
                                                                                              "<|start|>"))
    with pytest.raises(ModelLoadError, match=message) as err:
        average_models(load_average_config(recipe(tmp_path, {tiny_run: 1, other: 1})))
    assert str(other) in str(err.value)
    assert not (tmp_path / "w" / "soup").exists()  # refused before anything is written


def _rewrite_weights(model_dir, change):
    path = model_dir / "model.safetensors"
    save_file(change(load_file(path)), path, metadata={"format": "pt"})


def test_a_checkpoint_saved_with_the_cache_off_averages_with_a_final_model(tiny_run, tmp_path):
    """Checkpoints saved mid-training with gradient checkpointing have use_cache false in config.json; the soup
    takes the first ingredient's config, cache on."""
    other = perturbed_copy(tiny_run, tmp_path / "other")
    config = json.loads((other / "model" / "config.json").read_text())
    (other / "model" / "config.json").write_text(json.dumps({**config, "use_cache": False}))
    soup = average_models(load_average_config(recipe(tmp_path, {tiny_run: 1, other: 1})))
    assert json.loads((soup / "model" / "config.json").read_text()).get("use_cache", True) is True


def test_a_run_averages_with_another_runs_checkpoint_whose_template_is_the_base_models(tiny_run, tmp_path):
    """A checkpoint the trainer saved keeps the base model's chat template; the run's final model has the one of
    its prompt. Both prompt alike (qrewrite.json / the run's config), so they average; the tokenizer must agree."""
    other = perturbed_copy(tiny_run, tmp_path / "other")
    checkpoint = other / "checkpoint-60"
    shutil.copytree(other / "model", checkpoint)
    (checkpoint / "qrewrite.json").unlink()
    (checkpoint / "chat_template.jinja").write_text("{{ 'a default system turn' }}")
    soup = average_models(load_average_config(recipe(tmp_path, {tiny_run: 1, checkpoint: 1})))
    template = (soup / "model" / "chat_template.jinja").read_text()
    assert template == (tiny_run / "model" / "chat_template.jinja").read_text()
    first = average_models(load_average_config(recipe(tmp_path, {checkpoint: 1, tiny_run: 1}, run_name="first")))
    assert (first / "model" / "chat_template.jinja").read_text() == template  # not the checkpoint's base template
    (checkpoint / "tokenizer.json").write_text((checkpoint / "tokenizer.json").read_text().replace("<|im_start|>",
                                                                                                  "<|start|>"))
    with pytest.raises(ModelLoadError, match="must share a tokenizer"):
        average_models(load_average_config(recipe(tmp_path, {tiny_run: 1, checkpoint: 1}, run_name="soup2")))


def test_bf16_models_average_in_fp32_and_stay_bf16(tiny_run, tmp_path):
    a, b = perturbed_copy(tiny_run, tmp_path / "a16", seed=2), perturbed_copy(tiny_run, tmp_path / "b16")
    for d in (a, b):
        _rewrite_weights(d / "model", lambda t: {k: v.to(torch.bfloat16) for k, v in t.items()})
    soup = load_file(average_models(load_average_config(recipe(tmp_path, {a: 1, b: 1}))) / "model" /
                     "model.safetensors")
    wa, wb = load_file(a / "model" / "model.safetensors"), load_file(b / "model" / "model.safetensors")
    for key in wa:
        assert soup[key].dtype == torch.bfloat16
        assert torch.equal(soup[key], (0.5 * wa[key].float() + 0.5 * wb[key].float()).to(torch.bfloat16))


@pytest.mark.parametrize("change,message", [
    (lambda t: dict(list(t.items())[1:]), "hold different tensors"),
    (lambda t: {k: v.to(torch.bfloat16) for k, v in t.items()}, "is torch.bfloat16"),
])
def test_weights_that_do_not_match_are_named_and_leave_no_model(tiny_run, tmp_path, change, message):
    other = perturbed_copy(tiny_run, tmp_path / "other")
    _rewrite_weights(other / "model", change)
    with pytest.raises(ModelLoadError, match=message) as err:
        average_models(load_average_config(recipe(tmp_path, {tiny_run: 1, other: 1})))
    assert str(other / "model" / "model.safetensors") in str(err.value)
    run = Run(tmp_path / "w" / "soup")
    assert run.status == "interrupted" and not run.model_dir.exists()
    (other / "model" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="cannot read .*other/model/model.safetensors"):
        average_models(load_average_config(recipe(tmp_path, {tiny_run: 1, other: 1})))
    (other / "model" / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="has no model.safetensors"):
        average_models(load_average_config(recipe(tmp_path, {tiny_run: 1, other: 1})))


def test_ingredients_that_are_not_finished_models_are_refused(tiny_run, tmp_path):
    unfinished = tmp_path / "unfinished"
    shutil.copytree(tiny_run, unfinished)
    info = json.loads((unfinished / "run.json").read_text())
    (unfinished / "run.json").write_text(json.dumps({**info, "status": "running"}))
    with pytest.raises(RunStateError, match="not complete"):
        average_models(load_average_config(recipe(tmp_path, {tiny_run: 1, unfinished: 1})))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="LoRA adapter only"):
        average_models(load_average_config(recipe(tmp_path, {tiny_run: 1, adapter: 1})))
    with pytest.raises(ModelLoadError, match="not a directory"):
        average_models(load_average_config(recipe(tmp_path, {tiny_run: 1, tmp_path / "missing": 1})))
    with pytest.raises(ConfigError, match="same directory twice"):
        average_models(load_average_config(recipe(tmp_path, {tiny_run: 1, tiny_run / "model": 1})))


@pytest.mark.parametrize("text,message", [
    ("run_name: s\nmodels: {a: 1}\n", "at least two"),
    ("run_name: s\nmodels: [a, b]\n", "at least two"),
    ("run_name: s\nmodels: {a: 1, b: 0}\n", r"models: b: the weight must be a positive number, got 0"),
    ("run_name: s\nmodels: {a: 1, b: -1}\n", "positive number"),
    ("run_name: s\nmodels: {a: 1, b: .nan}\n", "positive number"),
    ("run_name: s\nmodels: {a: 1, b: true}\n", "positive number"),
    ("run_name: s\nmodels: {a: 1, b: heavy}\n", "positive number"),
    ("models: {a: 1, b: 1}\n", "'run_name' is missing"),
    ("run_name: s\nmodels: {a: 1, b: 1}\nweights: [1, 2]\n", "unknown key 'weights'"),
    ("- a\n- b\n", "must be a mapping"),
    ("run_name: [s\n", "not valid YAML"),
])
def test_bad_recipes_are_one_clear_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_average_config(path)
    assert str(path) in str(err.value)
    with pytest.raises(ConfigError, match="not found"):
        load_average_config(tmp_path / "missing.yaml")


RECIPES = sorted((ROOT / "configs" / "average").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_every_shipped_average_recipe_names_runs_the_repo_trains_and_matches_its_committed_run(path):
    from qrewrite.config import load_config
    cfg = load_average_config(path)
    recipes = [*(ROOT / "configs").glob("*.yaml"), *(ROOT / "configs").glob("topic/*.yaml")]
    trained = {load_config(p).run_name for p in recipes}
    for source in cfg.models:  # weights/<run> or weights/<run>/checkpoint-N of a run the repo trains
        parts = source.split("/")
        assert parts[0] == "weights" and parts[1] in trained, source
        assert len(parts) == 2 or (len(parts) == 3 and re.fullmatch(r"checkpoint-\d+", parts[2])), source
    # evaluated on dev (outputs/<run>/), or on the held-out topics alone (outputs/<run>/topic/)
    saved = next((p for p in (ROOT / "outputs" / cfg.run_name / "config.yaml",
                              ROOT / "outputs" / cfg.run_name / "topic" / "config.yaml") if p.is_file()), None)
    assert saved, f"{path.name}: commit its evaluation (scripts/reproduce_cpu.sh or reproduce_topic.sh {cfg.run_name})"
    assert load_average_config(saved) == cfg  # the committed evaluation was made from exactly this recipe


def test_an_average_of_one_runs_checkpoints_names_their_steps_and_the_model_training_started_from(tiny_run,
                                                                                                   tmp_path):
    checkpoints = sorted(tiny_run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert len(checkpoints) >= 2 and not (checkpoints[0] / "qrewrite.json").exists()
    run_dir = average_models(load_average_config(recipe(tmp_path, {c: 1 for c in checkpoints[-2:]})))
    info = Run(run_dir).info()
    assert [p["steps"] for p in info["average"]] == [int(c.name.split("-")[1]) for c in checkpoints[-2:]]
    assert info["model"] == "average of " + " + ".join(f"tiny-full/{c.name}" for c in checkpoints[-2:])
    trained = json.loads((tiny_run / "model" / "qrewrite.json").read_text())
    assert info["base_model"] == trained["base_model"]
    assert json.loads((run_dir / "model" / "qrewrite.json").read_text())["base_model"] == trained["base_model"]
    assert "None steps" not in (run_dir / "model" / "README.md").read_text()


# ChatML that injects a default system turn, as SmolLM2's and Qwen2's templates do
DEFAULT_SYSTEM_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nBe brief.<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_a_soup_of_checkpoints_prompts_and_stops_as_its_training_did(tiny_model, tmp_path):
    """Checkpoints keep the base model's chat template and stops (here a template with a default system turn);
    the soup's model directory gets the ones training writes, so plain transformers prompts it as qrewrite does."""
    from qrewrite.train.trainer import train
    run_dir = train(smoke_config(tiny_model, tmp_path / "w", run_name="minimal", prompt_format="minimal"))
    checkpoints = sorted(run_dir.glob("checkpoint-*"))
    for checkpoint in checkpoints:
        (checkpoint / "chat_template.jinja").write_text(DEFAULT_SYSTEM_TEMPLATE)
        (checkpoint / "generation_config.json").write_text(json.dumps({"eos_token_id": 0}))
    soup = average_models(load_average_config(recipe(tmp_path, {c: 1 for c in checkpoints})))
    tokenizer = load_tokenizer(str(soup / "model"))
    messages = [{"role": "user", "content": "Who um who won?"}]
    assert tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == \
        build_prompt(tokenizer, "Who um who won?", PromptSpec("minimal"))
    stops = json.loads((soup / "model" / "generation_config.json").read_text())["eos_token_id"]
    assert set(stops if isinstance(stops, list) else [stops]) == set(end_of_turn_ids(tokenizer))


def test_start_model_weight_moves_the_fine_tune_back_toward_the_model_it_started_from(tiny_run, tiny_model, tmp_path):
    """WiSE-FT: the start model (the ingredients' base_model) joins with its share; the prompt stays the run's."""
    other = perturbed_copy(tiny_run, tmp_path / "other")
    cfg = load_average_config(recipe(tmp_path, {tiny_run: 3, other: 1}, start_model_weight=0.2))
    assert cfg.weights() == pytest.approx([0.6, 0.2])
    run_dir = average_models(cfg)
    a, b = (load_file(d / "model" / "model.safetensors") for d in (tiny_run, other))
    start = load_file(tiny_model / "model.safetensors")
    soup = load_file(run_dir / "model" / "model.safetensors")
    for key in a:
        torch.testing.assert_close(soup[key], 0.6 * a[key] + 0.2 * b[key] + 0.2 * start[key])
    assert not torch.allclose(soup[key], 0.75 * a[key] + 0.25 * b[key])

    info = Run(run_dir).info()
    trained = json.loads((tiny_run / "model" / "qrewrite.json").read_text())
    assert [p["weight"] for p in info["average"]] == [0.6, 0.2, 0.2]
    assert info["average"][-1]["start_model"] and info["average"][-1]["source"] == trained["base_model"]
    assert info["model"].endswith("(the start, 0.2)")
    assert json.loads((run_dir / "model" / "qrewrite.json").read_text()) == trained  # the run's prompt, not none
    assert (run_dir / "model" / "chat_template.jinja").read_text() == \
        (tiny_run / "model" / "chat_template.jinja").read_text()
    card = (run_dir / "model" / "README.md").read_text()
    assert "average of 2 models fine-tuned from" in card.lower() and "the model they were fine-tuned from" in card
    assert load_average_config(run_dir / "config.yaml") == cfg  # the recipe saved with its start share

    alone = average_models(load_average_config(recipe(tmp_path, {tiny_run: 1}, run_name="wise",
                                                      start_model_weight=0.5)))
    wise = load_file(alone / "model" / "model.safetensors")
    torch.testing.assert_close(wise[key], 0.5 * a[key] + 0.5 * start[key])


def test_start_model_weight_needs_one_start_that_can_be_loaded(tiny_run, tmp_path):
    other = perturbed_copy(tiny_run, tmp_path / "other")
    saved = json.loads((other / "model" / "qrewrite.json").read_text())
    (other / "model" / "qrewrite.json").write_text(json.dumps({**saved, "base_model": str(tmp_path / "elsewhere")}))
    with pytest.raises(ConfigError, match="fine-tuned from one model; they name .*elsewhere"):
        average_models(load_average_config(recipe(tmp_path, {tiny_run: 1, other: 1}, start_model_weight=0.1)))
    average_models(load_average_config(recipe(tmp_path, {tiny_run: 1, other: 1})))  # without a start share: fine
    with pytest.raises(ModelLoadError, match=r"the start model .*elsewhere.* cannot be loaded: .*does not exist"):
        average_models(load_average_config(recipe(tmp_path, {other: 1}, run_name="lone", start_model_weight=0.1)))
    assert not (tmp_path / "w" / "lone").exists()


@pytest.mark.parametrize("value", [1, 1.5, -0.1, True, "half", None])
def test_a_start_model_weight_outside_0_to_1_is_refused_naming_the_file(tmp_path, value):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"run_name": "s", "models": {"a": 1}, "start_model_weight": value}))
    with pytest.raises(ConfigError, match=r"start_model_weight must be a number from 0 up to \(not including\) 1") \
            as err:
        load_average_config(path)
    assert str(path) in str(err.value)
