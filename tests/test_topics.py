"""The topic-disjoint validation split (qrewrite.data.topics, prepare --valid-split topic) and name-swapped copies."""

import json
import os
import random
from pathlib import Path

import pytest
from helpers import run_cli

from qrewrite.data.name_swap import name_swap_variant, swappable_words
from qrewrite.data.prepare import prepare_data
from qrewrite.data.records import load_split
from qrewrite.data.topics import capitalised_words, seen_name_share, topic_groups, topic_split
from qrewrite.errors import DataError

DISFL_QA = Path(os.environ.get("QREWRITE_DISFL_QA", "/work/shared/data/disfl-qa"))

# Three made-up "articles", each with its own names and words; ids are ObjectIds as in SQuAD: one writing
# process per article, questions a few seconds apart, paragraphs separated by pauses of an hour.
ARTICLES = {
    "volcano": ["Krakatoa", "magma", "eruption", "lava", "Vesuvius", "crater", "ash", "tephra"],
    "football": ["Bundesliga", "striker", "goalkeeper", "penalty", "Bayern", "league", "match", "referee"],
    "opera": ["Verdi", "soprano", "libretto", "aria", "Puccini", "tenor", "orchestra", "overture"],
}


def object_id(ts: int, process: int, counter: int) -> str:
    return f"{ts:08x}{process:010x}{counter:06x}"


def corpus(n_per_article=60, seed=0):
    rng = random.Random(seed)
    records = []
    for a, (name, words) in enumerate(ARTICLES.items()):
        for q in range(n_per_article):
            ts = 1_460_000_000 + a * 7 + (q // 5) * 3600 + q  # interleaved in time, a pause every 5 questions
            w = rng.sample(words, 3)
            target = f"What does the {w[0]} say about {w[1]} and {w[2]} {q}?"
            records.append({"id": object_id(ts, 1000 + a, q), "input": f"What does um the {w[0]} say about "
                            f"{w[1]} and {w[2]} {q}?", "target": target, "article": name})
    rng.shuffle(records)
    return records


def test_topic_groups_recover_articles():
    records = corpus()
    groups = topic_groups(records, n_topics=3)
    assert sorted(len(g) for g in groups) == [60, 60, 60]
    for g in groups:
        assert len({records[i]["article"] for i in g}) == 1
    assert topic_groups(list(records), n_topics=3) == groups  # deterministic


def test_topic_split_holds_out_whole_topics_seeded():
    records = corpus()
    train, valid, info = topic_split(records, 60, seed=0, n_topics=3)
    assert len(valid) == 60 and len(train) == 120 and info["n_topics_held_out"] == 1
    held = {r["article"] for r in valid}
    assert len(held) == 1 and held.isdisjoint(r["article"] for r in train)
    assert {r["id"] for r in train}.isdisjoint(r["id"] for r in valid)
    again = topic_split(list(reversed(records)), 60, seed=0, n_topics=3)
    assert {r["id"] for r in again[1]} == {r["id"] for r in valid}  # the records' order does not matter
    others = {frozenset(r["article"] for r in topic_split(records, 60, seed=s, n_topics=3)[1]) for s in range(8)}
    assert len(others) > 1  # the seed picks the topics


def test_topic_split_refuses_when_nothing_would_be_left():
    records = corpus(n_per_article=10)[:10]
    with pytest.raises(DataError, match="valid-size"):
        topic_split(records, 0, seed=0)
    with pytest.raises(DataError, match="more than half of the 10 training records"):
        topic_split(records, 6, seed=0)
    with pytest.raises(DataError, match="too large"):
        topic_split([r for r in corpus(n_per_article=10) if r["article"] == "opera"], 5, seed=0, n_topics=1)


def test_seen_name_share_counts_capitalised_words_after_the_first():
    assert capitalised_words("Where did Verdi meet Puccini in Milan?") == {"Verdi", "Puccini", "Milan"}
    assert capitalised_words("Verdi wrote what?") == set()
    train = [{"target": "Who was Verdi?"}]
    assert seen_name_share([{"target": "Where did Verdi meet Puccini?"}], train) == 0.5
    assert seen_name_share([{"target": "what is it?"}], train) is None


def test_prepare_valid_split_topic(tmp_path):
    records = corpus()
    src = tmp_path / "raw"
    src.mkdir()
    (src / "train.json").write_text(json.dumps(records[:150]))
    (src / "dev.json").write_text(json.dumps(records[150:]))
    out = tmp_path / "out"
    r = run_cli("prepare", "--source", src, "--out", out, "--valid-split", "topic", "--valid-size", "40")
    assert r.returncode == 0, r.stderr
    assert "topics held out" in r.stdout and "capitalised words occur in train" in r.stdout
    train, valid, dev = (load_split(out / f"{n}.json") for n in ("train", "valid", "valid_dev"))
    assert [x["id"] for x in dev] == [x["id"] for x in records[150:]]
    art = {x["id"]: x["article"] for x in records}
    assert {art[x["id"]] for x in valid}.isdisjoint(art[x["id"]] for x in train)
    assert len(train) + len(valid) == 150
    assert [x["id"] for x in load_split(out / "valid_typo.json")] == [x["id"] for x in valid]
    assert [x["id"] for x in load_split(out / "valid_dev_typo.json")] == [x["id"] for x in dev]
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["options"]["valid_split"] == "topic"
    assert report["split_off"]["method"] == "topic" and report["split_off"]["n_valid"] == len(valid)
    assert set(report["split_off"]["seen_name_share"]) == {"valid", "valid_dev"}
    assert report["counts"]["valid"] == len(valid) and report["counts"]["valid_dev"] == len(dev)
    # the same again, byte for byte; and the default split leaves valid_dev out
    r = run_cli("prepare", "--source", src, "--out", tmp_path / "again", "--valid-split", "topic",
                "--valid-size", "40")
    assert (tmp_path / "again" / "valid.json").read_bytes() == (out / "valid.json").read_bytes()
    prepare_data(src, out)
    assert not (out / "valid_dev.json").exists() and not (out / "valid_dev_typo.json").exists()


@pytest.mark.parametrize("args, message", [(["--valid-split", "article"], "--valid-split"),
                                           (["--valid-split", "topic", "--valid-size", "0"], "--valid-size")])
def test_prepare_topic_bad_options(tmp_path, args, message):
    src = tmp_path / "train.json"
    src.write_text(json.dumps(corpus()))
    r = run_cli("prepare", "--source", src, "--out", tmp_path / "out", *args)
    assert r.returncode == 2 and message in r.stderr and not (tmp_path / "out").exists()


@pytest.mark.skipif(not (DISFL_QA / "train.json").is_file(), reason="raw Disfl-QA not on this machine")
def test_disfl_qa_topic_split_is_unseen(tmp_path):
    rep = prepare_data(DISFL_QA, tmp_path, valid_split="topic", typo_eval=False)
    share = rep["split_off"]["seen_name_share"]
    assert 900 <= rep["counts"]["valid"] <= 1250
    assert share["valid"] < 0.65 < share["valid_dev"]  # Disfl-QA test: 51 %, dev against all of train: 89 %


def test_name_swap_is_consistent_and_seeded():
    rec = {"id": "a", "input": "When did Warsaw no Krakow host 1999 games in Krakow?",
           "target": "When did Krakow host 1999 games in Krakow?"}
    assert swappable_words(rec) == ["Krakow", "1999"]
    [copy] = name_swap_variant([rec], seed=0, id_suffix="#names1", pool=["Lisbon", "Oslo"])
    assert copy["id"] == "a#names1"
    new_city = copy["target"].split()[2]
    assert new_city not in ("Krakow", "Warsaw") and copy["target"].count(new_city) == 2
    new_year = copy["target"].split()[4]
    assert new_year.isdigit() and len(new_year) == 4 and new_year != "1999"
    assert copy["input"] == f"When did Warsaw no {new_city} host {new_year} games in {new_city}?"
    assert name_swap_variant([rec], seed=0, id_suffix="#names1", pool=["Lisbon", "Oslo"]) == [copy]
    variants = {name_swap_variant([rec], seed=s, id_suffix="#n")[0]["target"] for s in range(10)}
    assert len(variants) > 5
    assert name_swap_variant([{"id": "b", "input": "what uh is it?", "target": "What is it?"}], seed=0) == []
