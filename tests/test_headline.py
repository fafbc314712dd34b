"""``outputs/headline.md``: the README's first table, from headline.yaml, blind_scores.yaml and the runs' metrics."""
import json

import pytest
import yaml

from qrewrite.cli.main import main
from qrewrite.eval.headline import figure, headline_table, load_blind_scores, load_headline_spec, write_headline
from qrewrite.eval.readme_tables import begin_marker, end_marker

SPEC = {
    "splits": {"unseen": "topic valid", "dev": "dev"},
    "typo_splits": {"unseen": "topic valid (typo)"},
    "rows": [{"run": "soup-copy1", "label": "**soup**, copy bonus", "params": "135M"},
             {"run": "rules", "label": "rules baseline", "params": "none"},
             {"label": "BART (published)", "params": "139M", "test": {"rougeL": "~0.943", "exact_match": "67.5%"},
              "typo": False}],
    "training": {"runs": ["part-a", "part-b"], "hardware": "2 CPU cores"},
    "notes": ["A dash: not measured."],
}
SCORES = {"source": "scored elsewhere", "scoring": "stemmed ROUGE-L",
          "command": "python -m qrewrite score --predictions outputs/RUN/blind/SPLIT.jsonl --references test.json",
          "runs": {"soup-copy1": {"test": {"rougeL": 0.9375, "exact_match": 0.665},
                                  "test_typo": {"rougeL": 0.8926, "exact_match": 0.414}}}}


def _evaluation(outputs, directory, name, data, rouge_l, em, train_time_s=None, **metrics):
    run = {"name": name, "model": "m", "method": "full", "data": data, "train_time_s": train_time_s}
    (outputs / directory).mkdir(parents=True, exist_ok=True)
    (outputs / directory / "metrics.json").write_text(json.dumps(
        {"metrics": {"n": 10, "rougeL": rouge_l, "exact_match": em, **metrics}, "run": run}))


@pytest.fixture
def outputs(tmp_path):
    out = tmp_path / "outputs"
    out.mkdir()
    _evaluation(out, "soup-copy1/topic", "soup-copy1", "topic valid", 0.9441, 0.6870, 3.8,
                rougeL_ci=[0.9382, 0.9503], exact_match_ci=[0.659, 0.715])
    _evaluation(out, "soup-copy1/topic/typo", "soup-copy1", "topic valid (typo)", 0.837, 0.216, 3.8)
    _evaluation(out, "rules/topic", "rules", "topic valid", 0.915, 0.593)
    _evaluation(out, "rules", "rules", "dev", 0.924, 0.617)
    _evaluation(out, "part-a", "part-a", "dev", 0.95, 0.7, 600.0)
    _evaluation(out, "part-b/topic", "part-b", "topic valid", 0.93, 0.6, 1200.0)
    _evaluation(out, "part-b/topic/typo", "part-b", "topic valid (typo)", 0.83, 0.2, 1200.0)
    (out / "headline.yaml").write_text(yaml.safe_dump(SPEC, sort_keys=False), encoding="utf-8")
    (out / "blind_scores.yaml").write_text(yaml.safe_dump(SCORES), encoding="utf-8")
    return out


def test_a_figure_carries_its_interval_when_the_metrics_have_one():
    assert figure({"rougeL": 0.9441, "rougeL_ci": [0.9382, 0.9503]}, "rougeL", "rouge") == "0.944 [0.938, 0.950]"
    assert figure({"exact_match": 0.687, "exact_match_ci": [0.659, 0.715]}, "exact_match", "pct") == \
        "68.7% [65.9, 71.5]"
    assert figure({"rougeL": 0.9441}, "rougeL", "rouge") == "0.944"
    assert figure({"rougeL": 0.9375}, "rougeL", "rouge4") == "0.9375"
    assert figure({"rougeL": 0.9441, "rougeL_ci": None}, "rougeL", "rouge") == "0.944"
    assert figure(None, "rougeL", "rouge") == figure({"exact_match": 0.5}, "rougeL", "rouge") == "\u2014"


def test_the_table_reads_each_row_from_its_runs_scores_and_quotes(outputs):
    md = headline_table(load_headline_spec(outputs / "headline.yaml"), load_blind_scores(outputs / "blind_scores.yaml"),
                        outputs)
    assert ("| model | params | unseen ROUGE-L | unseen EM | dev ROUGE-L | dev EM | Disfl-QA test ROUGE-L "
            "| Disfl-QA test EM |") in md
    assert ("| **soup**, copy bonus | 135M | 0.944 [0.938, 0.950] | 68.7% [65.9, 71.5] | \u2014 | \u2014 | 0.9375 "
            "| 66.5% |") in md
    assert "| rules baseline | none | 0.915 | 59.3% | 0.924 | 61.7% | \u2014 | \u2014 |" in md
    assert "| BART (published) | 139M | \u2014 | \u2014 | \u2014 | \u2014 | ~0.943 | 67.5% |" in md
    typo = md.split("| typo'd questions |")[1]
    assert "| **soup**, copy bonus | 0.837 | 21.6% | 0.8926 | 41.4% |" in typo and "BART" not in typo
    assert "- A dash: not measured." in md
    assert "outputs/soup-copy1/blind/test.jsonl --references test.json`" in md and "scored elsewhere" in md
    # the ingredients' train_time_s summed (600 s + 1200 s, each counted once), then the soup's own
    assert "- Training: 2 runs (`part-a`, `part-b`), 30.0 min in all on 2 CPU cores; averaging their weights " \
           "took 4 s." in md


def test_a_training_run_without_a_time_is_an_error_naming_it(outputs):
    spec = {**SPEC, "training": {"runs": ["part-a", "missing-run"]}}
    with pytest.raises(ValueError, match="training run 'missing-run' needs one train_time_s"):
        headline_table(spec, SCORES, outputs)


@pytest.mark.parametrize("broken, message", [
    ({"rows": [{"run": "x"}]}, "row 1 needs a 'label'"),
    ({"rows": [{"label": "no run, no figures"}]}, "row 1 needs 'run'"),
    ({"training": {"runs": []}}, "training.runs"),
    ({"splits": ["a"]}, "field 'splits' must be a dict"),
])
def test_a_malformed_spec_names_the_file_and_the_field(tmp_path, broken, message):
    path = tmp_path / "headline.yaml"
    path.write_text(yaml.safe_dump({**SPEC, **broken}, sort_keys=False), encoding="utf-8")
    with pytest.raises(ValueError, match=f"headline.yaml: .*{message}"):
        load_headline_spec(path)


def test_malformed_blind_scores_name_the_run_and_split(tmp_path):
    path = tmp_path / "blind_scores.yaml"
    path.write_text(yaml.safe_dump({**SCORES, "runs": {"r": {"test": {"rougeL": "high", "exact_match": 0.5}}}}))
    with pytest.raises(ValueError, match=r"blind_scores.yaml: runs\.r\.test must be"):
        load_blind_scores(path)


def test_no_spec_no_headline_and_no_scores_file_leaves_test_columns_empty(outputs):
    (outputs / "blind_scores.yaml").unlink()
    md = write_headline(outputs).read_text(encoding="utf-8")
    assert "| **soup**, copy bonus | 135M | 0.944 [0.938, 0.950] | 68.7% [65.9, 71.5] | \u2014 | \u2014 | \u2014 " \
           "| \u2014 |" in md
    (outputs / "headline.yaml").unlink()
    (outputs / "headline.md").unlink()
    assert write_headline(outputs) is None and not (outputs / "headline.md").exists()


def test_the_results_command_writes_it_and_the_readmes_headline_block(tmp_path, outputs, monkeypatch, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# project\n\n{begin_marker('headline.md')}\nstale\n{end_marker('headline.md')}\n\nText.\n")
    monkeypatch.chdir(tmp_path)
    assert main(["results", "--outputs", "outputs"]) == 0
    assert "written: outputs/headline.md" in capsys.readouterr().out
    text = readme.read_text(encoding="utf-8")
    body = (outputs / "headline.md").read_text(encoding="utf-8").split("\n", 2)[2].rstrip("\n")
    assert f"{begin_marker('headline.md')}\n{body}\n{end_marker('headline.md')}\n\nText.\n" in text
    assert "stale" not in text and "Generated by" not in text
