"""``qrewrite results`` keeps the README's marked copies of the generated tables current (headline.md, and
results.md and ablations.md where a README marks them)."""
import json

import pytest

from qrewrite.cli.main import main
from qrewrite.eval.readme_tables import begin_marker, end_marker, readme_with_tables, sync_readme

RESULTS = """_Generated; do not edit._

| run | ROUGE-L |
|---|---:|
| new-run | 0.950 |

ROUGE: a footnote that the README does not copy.
"""
ABLATIONS = """_Generated._

| line | run |
|---|---|
| ref | new-run |

Targets:

- clean ROUGE-L >= 0.960: 0.950, **not met**
"""


def _readme(results_rows="| run | ROUGE-L |\n| old-run | 0.900 |", ablation_rows="| line | run |\n| ref | old |"):
    return (f"# project\n\nIntro text.\n\n{begin_marker('results.md')}\n{results_rows}\n{end_marker('results.md')}\n\n"
            f"Between the tables.\n\n{begin_marker('ablations.md')}\n{ablation_rows}\n\n- stale target line\n"
            f"{end_marker('ablations.md')}\n\nClosing text.\n")


@pytest.fixture
def outputs(tmp_path):
    out = tmp_path / "outputs"
    out.mkdir()
    (out / "results.md").write_text(RESULTS, encoding="utf-8")
    (out / "ablations.md").write_text(ABLATIONS, encoding="utf-8")
    return out


def test_marked_blocks_get_the_generated_tables_and_nothing_else_changes(outputs):
    new = readme_with_tables(_readme(), outputs)
    assert "old-run" not in new and "stale target line" not in new and "footnote" not in new
    assert (f"{begin_marker('results.md')}\n| run | ROUGE-L |\n|---|---:|\n| new-run | 0.950 |\n"
            f"{end_marker('results.md')}") in new
    assert (f"{begin_marker('ablations.md')}\n| line | run |\n|---|---|\n| ref | new-run |\n\n"
            f"- clean ROUGE-L >= 0.960: 0.950, **not met**\n{end_marker('ablations.md')}") in new
    for text in ("# project\n\nIntro text.\n\n", "\n\nBetween the tables.\n\n", "\n\nClosing text.\n"):
        assert text in new
    assert readme_with_tables(new, outputs) == new  # a second pass changes nothing


def test_a_missing_generated_file_leaves_its_block(outputs):
    (outputs / "ablations.md").unlink()
    new = readme_with_tables(_readme(), outputs)
    assert "new-run" in new and "| ref | old |" in new and "stale target line" in new


@pytest.mark.parametrize("broken", [
    lambda t: t.replace(begin_marker("ablations.md") + "\n", ""),
    lambda t: t.replace(end_marker("results.md") + "\n", ""),
    lambda t: t + begin_marker("results.md") + "\n",
])
def test_missing_or_repeated_markers_name_the_file_and_marker(tmp_path, outputs, broken):
    readme = tmp_path / "README.md"
    readme.write_text(broken(_readme()), encoding="utf-8")
    before = readme.read_text(encoding="utf-8")
    with pytest.raises(ValueError, match=r"README\.md.*<!-- begin outputs/(results|ablations)\.md -->"):
        sync_readme(readme, outputs)
    assert readme.read_text(encoding="utf-8") == before  # nothing half-written


def test_a_readme_marks_only_the_blocks_it_wants(outputs):
    """A README that shows the headline alone gets it, whole but for its "generated" line; the other generated
    files need no block."""
    (outputs / "headline.md").write_text("_Generated._\n\n| model | EM |\n|---|---:|\n| soup | 68.7% |\n\n- a note\n")
    readme = f"# project\n\n{begin_marker('headline.md')}\nold\n{end_marker('headline.md')}\n\nSee results.md.\n"
    new = readme_with_tables(readme, outputs)
    assert new == (f"# project\n\n{begin_marker('headline.md')}\n| model | EM |\n|---|---:|\n| soup | 68.7% |\n\n"
                   f"- a note\n{end_marker('headline.md')}\n\nSee results.md.\n")
    assert readme_with_tables(new, outputs) == new


def _metrics_file(outputs):
    run = {"name": "cli-run", "model": "m", "method": "full", "data": "disfl-qa dev", "data_path": "d.json",
           "data_fingerprint": "0123", "git_commit": "abc", "command": "python -m qrewrite evaluate",
           "created": "2024-01-01T00:00:00+00:00"}
    metrics = {"n": 1, "rouge1": 0.5, "rouge2": 0.5, "rougeL": 0.5, "rougeLsum": 0.5, "bleu": 1.0,
               "exact_match": 0.0, "changed_input": 1.0}
    (outputs / "cli-run").mkdir(parents=True)
    (outputs / "cli-run" / "metrics.json").write_text(json.dumps({"metrics": metrics, "run": run}))


def test_the_results_command_updates_the_readme_beside_the_outputs(tmp_path, outputs, monkeypatch, capsys):
    (outputs / "ablations.md").unlink()  # no ablations.yaml here: results writes no ablations.md
    _metrics_file(outputs)
    readme = tmp_path / "README.md"
    readme.write_text(_readme(), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["results", "--outputs", "outputs"]) == 0
    assert "| cli-run |" in readme.read_text(encoding="utf-8") and "old-run" not in readme.read_text()
    assert "updated: README.md" in capsys.readouterr().out
    assert main(["results", "--outputs", "outputs"]) == 0
    assert "unchanged: README.md" in capsys.readouterr().out


def test_no_readme_and_an_explicit_readme(tmp_path, outputs, monkeypatch, capsys):
    (outputs / "ablations.md").unlink()
    _metrics_file(outputs)
    readme = tmp_path / "README.md"
    readme.write_text(_readme(), encoding="utf-8")
    other = tmp_path / "docs" / "RESULTS.md"
    other.parent.mkdir()
    other.write_text(_readme(), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["results", "--outputs", "outputs", "--no-readme"]) == 0
    assert "old-run" in readme.read_text()
    assert main(["results", "--outputs", "outputs", "--readme", "docs/RESULTS.md"]) == 0
    assert "| cli-run |" in other.read_text() and "old-run" in readme.read_text()
    capsys.readouterr()
    assert main(["results", "--outputs", "outputs", "--readme", "docs/missing.md"]) == 2
    assert "error: --readme docs/missing.md: no such file" in capsys.readouterr().err


def test_a_default_readme_without_markers_is_reported_not_rewritten(tmp_path, outputs, monkeypatch, capsys):
    (outputs / "ablations.md").unlink()
    _metrics_file(outputs)
    readme = tmp_path / "README.md"
    readme.write_text("# someone else's README\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["results", "--outputs", "outputs"]) == 0
    assert readme.read_text() == "# someone else's README\n"
    assert "not updated: README.md: expected one '<!-- begin outputs/headline.md -->'" in capsys.readouterr().out
    assert main(["results", "--outputs", "outputs", "--readme", "README.md"]) == 2
    assert "error: README.md: expected one" in capsys.readouterr().err
    assert readme.read_text() == "# someone else's README\n"
