import json

import pytest

from qrewrite.eval.collect import collect_runs
from qrewrite.eval.results import loss_curves, results_table, write_results

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _metrics(rouge1, rouge2, rougeL, bleu, em, changed, n=100):
    return {"n": n, "rouge1": rouge1, "rouge2": rouge2, "rougeL": rougeL, "rougeLsum": rougeL, "bleu": bleu,
            "exact_match": em, "changed_input": changed}


def _run(name, method, data="disfl-qa dev", steps=None, train_time_s=None, peak_memory_mb=None,
         model="HuggingFaceTB/SmolLM2-135M-Instruct"):
    return {"name": name, "model": model, "method": method, "data": data, "data_path": "dataset/valid.json",
            "data_fingerprint": "0123456789abcdef", "steps": steps, "train_time_s": train_time_s,
            "peak_memory_mb": peak_memory_mb, "git_commit": "abc123", "command": "python -m qrewrite eval",
            "created": "2024-01-01T00:00:00+00:00"}


def _write(path, doc):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")


@pytest.fixture
def outputs(tmp_path):
    out = tmp_path / "outputs"
    _write(out / "smollm2-lora" / "metrics.json",
           {"metrics": _metrics(0.91234, 0.85, 0.90449, 71.25, 0.4567, 0.98),
            "run": _run("smollm2-lora", "lora", steps=500, train_time_s=125.0, peak_memory_mb=2048.4)})
    _write(out / "copy" / "metrics.json",
           {"metrics": _metrics(0.8, 0.7, 0.75, 55.0, 0.0, 0.0), "run": _run("copy", "copy")})
    _write(out / "smollm2-lora" / "typo" / "metrics.json",
           {"metrics": _metrics(0.5, 0.25, 0.5, 20.04, 0.1, 1.0),
            "run": _run("smollm2-lora", "lora", data="disfl-qa dev (typo)", steps=500)})
    _write(out / "smollm2-lora" / "trainer_log.json",
           [{"step": 10, "loss": 2.5}, {"step": 20, "loss": 1.9}, {"step": 20, "eval_loss": 2.0},
            {"step": 30, "loss": 1.5}, {"step": 40, "loss": 1.2, "eval_loss": 1.6}])
    return out


def test_collect_runs_order_and_paths(outputs):
    runs = collect_runs(outputs)
    # data "disfl-qa dev" first (copy before lora), then "disfl-qa dev (typo)"
    assert [r["path"] for r in runs] == ["copy/metrics.json", "smollm2-lora/metrics.json",
                                         "smollm2-lora/typo/metrics.json"]
    assert runs[1]["metrics"]["bleu"] == 71.25 and runs[1]["run"]["method"] == "lora"


def test_collect_runs_method_order(tmp_path):
    for name, method in [("q", "qlora"), ("f", "full"), ("z", "zero-shot"), ("l", "lora"), ("c", "copy")]:
        _write(tmp_path / name / "metrics.json", {"metrics": _metrics(1, 1, 1, 1, 1, 1), "run": _run(name, method)})
    assert [r["run"]["method"] for r in collect_runs(tmp_path)] == ["copy", "zero-shot", "full", "lora", "qlora"]


def test_collect_runs_leaves_out_nested_results_roots(outputs):
    """outputs/quickstart (bash run.sh) has its own results.md: its runs stay out of outputs/results.md."""
    _write(outputs / "quickstart" / "quickstart" / "metrics.json",
           {"metrics": _metrics(1, 1, 1, 1, 1, 1), "run": _run("quickstart", "full")})
    assert "quickstart/quickstart/metrics.json" in [r["path"] for r in collect_runs(outputs)]
    write_results(outputs / "quickstart")
    assert [r["path"] for r in collect_runs(outputs / "quickstart")] == ["quickstart/metrics.json"]
    assert "quickstart" not in {r["run"]["name"] for r in collect_runs(outputs)}


def test_collect_runs_missing_dir(tmp_path):
    assert collect_runs(tmp_path / "nope") == []


def _table_rows(md: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines()
            if line.startswith("| ") and not line.startswith("| run |")]


def test_results_table_rows_and_formatting(outputs):
    md = results_table(collect_runs(outputs))
    lines = md.splitlines()
    assert "python -m qrewrite results" in lines[0] and "do not edit by hand" in lines[0]
    assert lines[2] == "### Baselines: no fine-tuning"
    header = [c.strip() for c in lines[4].strip("|").split("|")]
    assert header == ["run", "model", "method", "data", "steps", "ROUGE-1", "ROUGE-2", "ROUGE-L", "ROUGE-L 95% CI",
                      "BLEU", "EM", "EM 95% CI", "changed", "train time", "peak memory"]
    assert any(line.startswith("### Recipes trained on all of Disfl-QA train") for line in lines)
    rows = _table_rows(md)
    assert len(rows) == 3
    copy, lora, typo = rows
    assert copy == ["copy", "HuggingFaceTB/SmolLM2-135M-Instruct", "copy", "disfl-qa dev", "—",
                    "0.800", "0.700", "0.750", "—", "55.0", "0.0%", "—", "0.0%", "—", "—"]
    assert lora[0] == "smollm2-lora" and lora[2] == "lora" and lora[4] == "500"
    assert lora[5:13] == ["0.912", "0.850", "0.904", "—", "71.2", "45.7%", "—", "98.0%"]
    assert lora[13] == "2.1 min" and lora[14] == "2048 MB"
    assert typo[3] == "disfl-qa dev (typo)" and typo[9] == "20.0" and typo[13] == "—"


def test_results_table_missing_optional_metric(tmp_path):
    doc = {"metrics": {"rougeL": 0.5, "exact_match": 0.25}, "run": _run("r", "full")}
    _write(tmp_path / "r" / "metrics.json", doc)
    row = _table_rows(results_table(collect_runs(tmp_path)))[0]
    assert row[5:13] == ["—", "—", "0.500", "—", "—", "25.0%", "—", "—"]


def test_results_table_groups_marks_intervals_and_soup_time(tmp_path):
    """Baselines, in-topic and unseen-topic recipes and serving lines each get a table; the recommended model (and
    its other decodings) and the one recommended before are marked; a soup's time is its ingredients'."""
    for name, method, extra in (
            ("rules", "rules", {}), ("a", "full", {"train_time_s": 3600.0}), ("b", "full", {"train_time_s": 1800.0}),
            ("soup", "average", {"model": "average of a + b/checkpoint-9 + smollm2 (the start, 0.1)",
                                 "train_time_s": 4.0}),
            ("topic-a", "full", {}), ("topic-a-ct2", "full", {"command": "python -m qrewrite evaluate --engine x"}),
            ("soup-copy1", "average", {"model": "average of a + c", "train_time_s": 4.0})):
        run = {**_run(name, method), **extra}
        metrics = {**_metrics(0.9, 0.8, 0.9, 70.0, 0.5, 0.9), "rougeL_ci": [0.88, 0.92],
                   "exact_match_ci": [0.45, 0.55]}
        _write(tmp_path / name / "metrics.json", {"metrics": metrics, "run": run})
    spec = {"recommended": "soup", "previously_recommended": ["a"]}
    md = results_table(collect_runs(tmp_path), spec)
    sections = {}
    for line in md.splitlines():
        if line.startswith("### "):
            title = line[4:]
        elif line.startswith("| ") and not line.startswith("| run |"):
            sections.setdefault(title.split(":")[0].split(" (")[0], []).append(line.split(" | ")[0][2:])
    assert sections == {"Baselines": ["rules"],
                        "Recipes trained on all of Disfl-QA train": ["a (recommended before, tuned on dev)", "b",
                                                                     "**soup** (recommended)",
                                                                     "**soup-copy1** (the recommended model, "
                                                                     "decoded otherwise)"],
                        "Recipes trained without the held-out topics": ["topic-a"],
                        "Serving / engine lines": ["topic-a-ct2"]}
    rows = {r[0]: r for r in _table_rows(md)}
    assert rows["**soup** (recommended)"][13] == "soup of 3: 1.50 h"  # a and b trained; the start model did not
    assert rows["**soup-copy1** (the recommended model, decoded otherwise)"][13] == "soup of 2"  # c: no time known
    assert rows["b"][8] == "0.880–0.920" and rows["b"][11] == "45.0%–55.0%"


def test_write_results_deterministic_and_pngs(outputs):
    path = write_results(outputs)
    assert path == outputs / "results.md"
    first = path.read_text(encoding="utf-8")
    second = write_results(outputs).read_text(encoding="utf-8")
    assert first == second
    assert first == results_table(collect_runs(outputs), outputs_dir=outputs)
    assert f"results --outputs {outputs.as_posix()}`" in first.splitlines()[0]
    for name in ("metrics.png", "loss_curves.png"):
        data = (outputs / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
    assert not [p for p in outputs.iterdir() if p.name.endswith(".tmp")]  # no leftovers from atomic writes


def test_loss_plot_differs_with_and_without_logs(outputs):
    write_results(outputs)
    with_log = (outputs / "loss_curves.png").read_bytes()
    (outputs / "smollm2-lora" / "trainer_log.json").unlink()
    write_results(outputs)
    without_log = (outputs / "loss_curves.png").read_bytes()
    assert with_log != without_log and without_log.startswith(PNG_MAGIC)


def test_loss_curves_one_per_training_run(outputs):
    """A training run evaluated again under another name (a decoding ablation) holds a copy of the same log: one
    curve, named after the trained run; a different trained run is a second curve."""
    log = (outputs / "smollm2-lora" / "trainer_log.json").read_text(encoding="utf-8")
    for name, model_path in (("smollm2-lora", "weights/smollm2-lora"), ("smollm2-lora-beam4", "weights/smollm2-lora"),
                             ("smollm2-lora-2", "weights/smollm2-lora-2")):
        run = _run(name, "lora", steps=500)
        run["model_path"] = model_path
        _write(outputs / name / "metrics.json", {"metrics": _metrics(0.9, 0.8, 0.9, 70.0, 0.4, 0.9), "run": run})
        (outputs / name / "trainer_log.json").write_text(log, encoding="utf-8")
    curves = loss_curves(collect_runs(outputs), outputs)
    assert [label for label, _, _ in curves] == ["smollm2-lora", "smollm2-lora-2"]
    assert curves[0][1] == [(10, 2.5), (20, 1.9), (30, 1.5), (40, 1.2)] and curves[0][2] == [(20, 2.0), (40, 1.6)]



def test_a_second_cycle_is_drawn_after_the_run_it_continued(outputs):
    log = (outputs / "smollm2-lora" / "trainer_log.json").read_text(encoding="utf-8")
    for name, start in (("cycle1", "smollm2"), ("cycle2", "weights/cycle1/model"), ("cycle3", "weights/cycle2/model")):
        run = _run(name, "full", steps=40)
        run.update(model=start, model_path=f"weights/{name}")
        _write(outputs / name / "metrics.json", {"metrics": _metrics(0.9, 0.8, 0.9, 70.0, 0.4, 0.9), "run": run})
        (outputs / name / "trainer_log.json").write_text(log, encoding="utf-8")
    curves = {label: (train, evals) for label, train, evals in loss_curves(collect_runs(outputs), outputs)}
    assert curves["cycle1"][0] == [(10, 2.5), (20, 1.9), (30, 1.5), (40, 1.2)]
    assert curves["cycle2"][0] == [(50, 2.5), (60, 1.9), (70, 1.5), (80, 1.2)]
    assert curves["cycle3"][1] == [(100, 2.0), (120, 1.6)]
    assert curves["smollm2-lora"][0][0] == (10, 2.5)

def test_zero_runs(tmp_path):
    out = tmp_path / "outputs"
    path = write_results(out)
    text = path.read_text(encoding="utf-8")
    assert "no runs yet" in text and "python -m qrewrite results" in text
    assert "|" not in text.split("\n", 1)[1]  # no table
    for name in ("metrics.png", "loss_curves.png"):
        assert (out / name).read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize("doc,field", [
    ({"run": _run("a", "full")}, "metrics"),
    ({"metrics": _metrics(1, 1, 1, 1, 1, 1)}, "run"),
    ({"metrics": _metrics(1, 1, 1, 1, 1, 1), "run": {k: v for k, v in _run("a", "full").items() if k != "method"}},
     "run.method"),
    ({"metrics": {"rougeL": 0.5}, "run": _run("a", "full")}, "metrics.exact_match"),
    ({"metrics": {**_metrics(1, 1, 1, 1, 1, 1), "bleu": "high"}, "run": _run("a", "full")}, "metrics.bleu"),
])
def test_malformed_metrics_names_file_and_field(tmp_path, doc, field):
    _write(tmp_path / "good" / "metrics.json", {"metrics": _metrics(1, 1, 1, 1, 1, 1), "run": _run("g", "copy")})
    _write(tmp_path / "bad-run" / "metrics.json", doc)
    with pytest.raises(ValueError) as e:
        collect_runs(tmp_path)
    msg = str(e.value)
    assert "bad-run" in msg and "metrics.json" in msg and f"'{field}'" in msg


def test_invalid_json_names_file(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metrics.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="broken"):
        collect_runs(tmp_path)
    with pytest.raises(ValueError, match="broken"):
        write_results(tmp_path)


def test_a_run_without_a_trainer_log_is_drawn_from_the_losses_its_train_log_printed(outputs):
    """Before trainer_log.json was kept for every run, train.log held the Trainer's printed losses: each line's step
    is its epoch's share of the last line's, times the run's steps."""
    run = _run("old", "full", steps=40)
    run["model_path"] = "weights/old"
    _write(outputs / "old" / "topic" / "metrics.json", {"metrics": _metrics(0.9, 0.8, 0.9, 70.0, 0.4, 0.9), "run": run})
    (outputs / "old" / "train.log").write_text(
        "+ python -m qrewrite train\nLoading weights: 100%\n"
        "{'loss': '2.5', 'grad_norm': '1', 'epoch': '0.1'}\n{'eval_loss': '2.0', 'epoch': '0.2'}\n"
        "{'loss': '1.5', 'grad_norm': '1', 'epoch': '0.3'}\n{'loss': '1.2', 'epoch': '0.4'}\nrun complete\n",
        encoding="utf-8")
    curves = {label: (train, evals) for label, train, evals in loss_curves(collect_runs(outputs), outputs)}
    assert curves["old"] == ([(10, 2.5), (30, 1.5), (40, 1.2)], [(20, 2.0)])
    assert set(curves) == {"smollm2-lora", "old"}


def test_loss_curves_of_the_recommended_recipe_alone(outputs):
    """With an ablation spec, the loss plot draws the recommended soup's ingredients and nothing else."""
    from qrewrite.eval.plots import recipe_runs
    log = (outputs / "smollm2-lora" / "trainer_log.json").read_text(encoding="utf-8")
    for name in ("a", "b", "other"):
        run = _run(name, "full", steps=40)
        run["model_path"] = f"weights/{name}"
        _write(outputs / name / "metrics.json", {"metrics": _metrics(0.9, 0.8, 0.9, 70.0, 0.4, 0.9), "run": run})
        (outputs / name / "trainer_log.json").write_text(log, encoding="utf-8")
    soup = _run("soup", "average")
    soup["model"] = "average of a + b/checkpoint-20"
    _write(outputs / "soup" / "metrics.json", {"metrics": _metrics(0.9, 0.8, 0.9, 70.0, 0.4, 0.9), "run": soup})
    runs = collect_runs(outputs)
    assert recipe_runs(runs, {"recommended": "soup"}) == ("soup", ["a", "b"])
    assert recipe_runs(runs, {"recommended": "other"}) == ("other", ["other"])
    assert [c[0] for c in loss_curves(runs, outputs, only=["a", "b"])] == ["a", "b"]
    (outputs / "ablations.yaml").write_text("reference: a\nrecommended: soup\nsplits: {clean: disfl-qa dev}\n"
                                            "lines: [{run: b, change: other}]\n", encoding="utf-8")
    write_results(outputs)
    with_spec = (outputs / "loss_curves.png").read_bytes()
    (outputs / "ablations.yaml").unlink()
    write_results(outputs)
    assert (outputs / "loss_curves.png").read_bytes() != with_spec


def _predictions(directory, scores):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "predictions.jsonl").write_text("".join(
        json.dumps({"id": f"q{i}", "rougeL": r, "exact_match": e}) + "\n" for i, (r, e) in enumerate(scores)))
    n = len(scores)
    metrics = {**_metrics(0.9, 0.8, sum(r for r, _ in scores) / n, 70.0, sum(e for _, e in scores) / n, 0.9, n=n)}
    return metrics


def test_ablation_lines_carry_paired_intervals_and_bold_only_the_differences_that_exclude_zero(tmp_path):
    from qrewrite.eval.ablations import ablation_table
    ref = [(0.5 + 0.004 * i, i % 3 == 0) for i in range(100)]
    variants = {"ref": ref, "same": ref, "better": [(r + 0.02, True) for r, _ in ref],
                "noise": [(r + (0.01 if i % 2 else -0.01), e) for i, (r, e) in enumerate(ref)]}
    for name, scores in variants.items():
        metrics = _predictions(tmp_path / name, scores)
        _write(tmp_path / name / "metrics.json", {"metrics": metrics, "run": _run(name, "full")})
    spec = {"reference": "ref", "splits": {"clean": "disfl-qa dev"},
            "lines": [{"run": n, "change": n} for n in ("same", "better", "noise")]}
    rows = {line.split(" | ")[1]: line.split(" | ") for line in ablation_table(spec, tmp_path).splitlines()
            if line.startswith("| ") and not line.startswith("| line")}
    assert rows["same"][4] == "0.698 (+0.0000 [+0.0000, +0.0000])"
    assert rows["better"][4] == "0.718 (**+0.0200** [+0.0200, +0.0200])"
    assert rows["better"][5].startswith("100.0% (**+66.0** [")
    assert rows["noise"][4].startswith("0.698 (+0.0000 [-0.00") and "**" not in rows["noise"][4]


def test_the_clean_column_shows_questions_kept_unchanged_and_negations_lost(tmp_path):
    from qrewrite.eval.ablations import ablation_table
    for name in ("ref", "kept", "damaging"):
        metrics = _predictions(tmp_path / name, [(0.9, True)] * 10)
        _write(tmp_path / name / "metrics.json", {"metrics": metrics, "run": _run(name, "full")})
    for name, changed, lost in (("kept", 0.0, 0.0), ("damaging", 0.25, 0.125)):
        metrics = {**_metrics(0.9, 0.8, 0.9, 70.0, 0.75, changed, n=400), "negation_dropped": lost}
        _write(tmp_path / name / "clean" / "metrics.json",
               {"metrics": metrics, "run": _run(name, "full", data="clean")})
    spec = {"reference": "ref", "splits": {"clean": "disfl-qa dev"}, "clean_split": "clean",
            "lines": [{"run": n, "change": n} for n in ("kept", "damaging")]}
    table = ablation_table(spec, tmp_path)
    assert "| clean kept |" in table.splitlines()[4]
    rows = {line.split(" | ")[1]: line.split(" | ") for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| line")}
    assert rows["kept"][-2] == "100.0%, 0 lost a negation"
    assert rows["damaging"][-2] == "75.0%, 50 lost a negation"
    assert rows["ref"][-2] == "not evaluated"


def test_the_plots_mark_the_recommended_decoding_and_the_greedy_model_apart():
    """metrics.png's labels: the recommended decoding's evaluation is "recommended", the same model decoded greedily
    says so; without recommended_decoding the model's own evaluation is the recommended one."""
    from qrewrite.eval.plots import _recommended_label
    spec = {"recommended": "soup", "recommended_decoding": "soup-copy1"}
    assert _recommended_label("soup-copy1", spec) == " (recommended)"
    assert _recommended_label("soup", spec) == " (recommended model, greedy)"
    assert _recommended_label("other", spec) == ""
    assert _recommended_label("soup", {"recommended": "soup"}) == " (recommended)"
    assert _recommended_label("soup", None) == ""


@pytest.mark.parametrize("value", ["", 3, ["a"]])
def test_a_recommended_decoding_that_is_not_a_run_name_is_refused(tmp_path, value):
    import yaml

    from qrewrite.eval.ablations import load_spec
    path = tmp_path / "ablations.yaml"
    path.write_text(yaml.safe_dump({"reference": "a", "splits": {"clean": "dev"}, "lines": [],
                                    "recommended_decoding": value}))
    with pytest.raises(ValueError, match="recommended_decoding"):
        load_spec(path)
