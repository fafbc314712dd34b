"""The project's own small sample dataset: messy question -> clean question.

Every clean question below was written for this project (geography, science, history, sport, cooking, music,
animals, books, technology and made-up trivia about places and stories that do not exist). The messy inputs
are generated from them, deterministically for a seed, with the kinds of disfluency that Disfl-QA collects:

- ``correction``: a wrong start or a wrong entity, then a cue and the right question
  ("How many no sorry which city hosted ...?", "Who founded Apple, no, Microsoft?");
- ``restart``: the first words said twice ("Where is, where is the ...?");
- ``filler``: "um", "uh", "you know" dropped into the question;
- ``typo``: keyboard slips from :func:`qrewrite.data.typos.add_typos`;
- ``mixed``: a disfluency and typos together.

A clean question lives either in train or in valid, never in both. Records are canonical
(``{"id", "input", "target"}``); the kind is the last part of the id (``train-012-filler``), so the files keep
the one format and the kind can still be recovered. Run ``python -m qrewrite.data.sample`` to rewrite
``dataset/sample/``; a test checks the committed files equal :func:`generate_sample`.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from qrewrite.data.kinds import SPOKEN_CORRECTIONS, SPOKEN_FILLERS
from qrewrite.data.typos import add_typos
from qrewrite.files import PROJECT_ROOT, atomic_write_text

__all__ = ["SAMPLE_DIR", "SAMPLE_KINDS", "QUESTIONS", "generate_sample", "write_sample", "sample_kind", "lower_first"]

SAMPLE_DIR: Path = PROJECT_ROOT / "dataset" / "sample"
# the kinds a sample record is generated as (the last part of its id); data/kinds.KINDS is what a question is
SAMPLE_KINDS = ("correction", "restart", "filler", "typo", "mixed")
N_TRAIN, N_VALID, N_VALID_QUESTIONS = 300, 80, 28

# "[right|wrong]" marks an entity a speaker may first get wrong; the clean question uses "right".
QUESTIONS = [
    # geography
    "What is the capital city of [Peru|Chile]?",
    "Which river flows through [Budapest|Prague]?",
    "How long is the coastline of [Portugal|Spain]?",
    "Which ocean lies to the west of [Australia|New Zealand]?",
    "Where does the [Danube|Rhine] begin?",
    "What is the highest mountain in [Africa|Europe]?",
    "How many countries share a border with [Germany|France]?",
    "Which desert covers the south of [Mongolia|Kazakhstan]?",
    "What language do most people speak in [Brazil|Argentina]?",
    "Why is the Dead Sea so salty?",
    "When did [Iceland|Norway] become a republic?",
    "Which city is the largest in [Canada|Mexico]?",
    "What is the longest river in [Asia|South America]?",
    "How deep is Lake [Baikal|Superior]?",
    "Which country do the Galapagos Islands belong to?",
    "What causes the monsoon rains in [India|Thailand]?",
    "Where is the [Atacama|Gobi] Desert?",
    "How many time zones does [Russia|China] have?",
    "What is the tallest building in [Dubai|Shanghai]?",
    # science
    "What is the boiling point of water at sea level?",
    "Which planet has the most moons?",
    "How fast does sound travel through [water|air]?",
    "What gas do plants give off during photosynthesis?",
    "Who discovered [penicillin|insulin]?",
    "Why do leaves change colour in autumn?",
    "What is the chemical symbol for [gold|silver]?",
    "How many bones are there in an adult human body?",
    "Which element has the atomic number [six|eight]?",
    "What does a [seismometer|barometer] measure?",
    "How long does sunlight take to reach the Earth?",
    "Which organ produces [bile|insulin]?",
    "What is the hardest natural mineral?",
    "Why does ice float on water?",
    "Who came up with the theory of [general relativity|evolution]?",
    "What is the largest moon of [Saturn|Jupiter]?",
    "How hot is the surface of [Venus|Mars]?",
    "Which blood cells fight infections?",
    "Which metal is liquid at room temperature?",
    "How many hearts does an octopus have?",
    "Which vitamin does the skin make in sunlight?",
    "What is the [longest|smallest] bone in the human body?",
    "Which planet is closest to the Sun?",
    "How far away is the Moon?",
    # history
    "When did the Berlin Wall fall?",
    "Who was the first emperor of [Rome|China]?",
    "Which city hosted the 1996 [Summer|Winter] Olympics?",
    "Why was the Roman Empire divided in two?",
    "In which year did the [Titanic|Lusitania] sink?",
    "Who painted the ceiling of the Sistine Chapel?",
    "What was the main cause of the [French|American] Revolution?",
    "Where was [Napoleon|Wellington] born?",
    "How long did the Hundred Years' War really last?",
    "Which ship carried the Pilgrims across the Atlantic in 1620?",
    "Who was the main author of the [Declaration of Independence|Constitution]?",
    "When did women in [New Zealand|Britain] win the right to vote?",
    "What did the Rosetta Stone help scholars read?",
    "Which empire built [Machu Picchu|Chichen Itza]?",
    "How many wives did Henry the Eighth have?",
    "Who was the first person to walk on the Moon?",
    "When was the printing press invented?",
    "What is the oldest university in [England|Scotland]?",
    "Which artist cut off part of his own ear?",
    # sport
    "How many players does a [rugby union|basketball] team have on the field?",
    "Which country has won the most [football|cricket] World Cups?",
    "Who holds the world record in the [100 metres|marathon]?",
    "How long is a marathon in kilometres?",
    "Where were the first modern Olympic Games held?",
    "What is the diameter of a [basketball hoop|golf hole]?",
    "Which tennis tournament is played on [grass|clay]?",
    "When was [volleyball|basketball] invented?",
    "How many points is a [touchdown|field goal] worth?",
    "Which team won the first Super Bowl?",
    "What is the highest possible break in snooker?",
    "Why do golf balls have dimples?",
    "Which sport uses a shuttlecock?",
    "How many minutes does a [rugby|football] match last?",
    # cooking
    "How long should you boil a [soft|hard] egg?",
    "At what temperature does [sugar|chocolate] start to burn?",
    "Which spice gives [paella|curry] its yellow colour?",
    "Why does bread dough need to rest?",
    "What is the main ingredient in [guacamole|hummus]?",
    "How do you keep [pasta|rice] from sticking together?",
    "Which cheese goes on a classic [margherita pizza|Greek salad]?",
    "What makes a [souffle|meringue] rise?",
    "Where does [kimchi|sauerkraut] come from?",
    "How much salt goes into a loaf of bread?",
    "Which cooking oil has the highest smoke point?",
    "What is the difference between baking soda and baking powder?",
    "Why do onions make people cry?",
    # music
    "Who composed the [Moonlight Sonata|Four Seasons]?",
    "How many strings does a standard [bass guitar|banjo] have?",
    "Which band released the album [Abbey Road|Rumours]?",
    "When did [Mozart|Beethoven] write his first symphony?",
    "What is the lowest voice type for a [male|female] singer?",
    "Where was the composer [Chopin|Liszt] born?",
    "How many keys does a standard piano have?",
    "Which instrument did [Miles Davis|Charlie Parker] play?",
    "What does the tempo marking [allegro|adagio] mean?",
    "Who wrote the opera [Carmen|Tosca]?",
    "Why do some orchestras tune to an A of 442 hertz?",
    "Which country does the tango come from?",
    "How long is a typical pop song?",
    # made-up trivia
    "Which river runs through the fictional town of [Marrowvale|Dunmere]?",
    "Who keeps the lighthouse in the Brackenfield stories?",
    "What colour is the flag of the island of [Varnholm|Ostrey]?",
    "How many moons orbit the planet [Kelthar|Zorvane] in the Starwake novels?",
    "When was the Guild of [Glassblowers|Clockmakers] of Tessaly founded?",
    "Where does Captain [Odile Brask|Henrik Vol] hide the map?",
    "Which dragon guards the [northern|eastern] pass in the game Emberfall?",
    "What is the national dish of the imaginary country of [Calvoria|Brenland]?",
    "Why did the village of Little Puddington ban umbrellas?",
    "How tall is the clock tower on [Fenwick Square|Harrow Green]?",
    "Who won the pumpkin race in [Oddsbury|Pellington] last autumn?",
    "What language do the sea people speak in the Tidebound saga?",
    "Which spell turns lead into [glass|gold] in the Ashgrove books?",
    "How old is the talking tortoise in the Mossbank tales?",
    # animals, books, technology, everyday
    "Who invented the [telephone|telegraph]?",
    "What does the abbreviation [HTTP|HTML] stand for?",
    "When was the first [email|text message] sent?",
    "How does a refrigerator keep food cold?",
    "What is the speed limit on [German|Italian] motorways?",
    "Why do cats purr?",
    "How many legs does a [spider|beetle] have?",
    "Which bird can fly backwards?",
    "What do [pandas|koalas] mostly eat?",
    "Where do [emperor penguins|polar bears] live?",
    "How long can a [camel|horse] go without water?",
    "Which animal has the longest [neck|tongue]?",
    "What is the largest [mammal|fish] in the ocean?",
    "Who wrote the novel [Moby-Dick|Frankenstein]?",
    "Who wrote the poem [The Raven|The Tyger]?",
    "Whose face is on the [ten|five] pound note?",
    "What is the currency of [Japan|South Korea]?",
    "What year did the first [iPhone|iPod] come out?",
    "Is a tomato a fruit or a vegetable?",
    "Can you see the Great Wall of China from space?",
    "Who designed the [Eiffel Tower|Sydney Opera House]?",
    "Who founded [Microsoft|Apple]?",
    "Does lightning ever strike the same place twice?",
]

WRONG_STARTS = [
    "What year", "How many", "Who was", "Where did the", "When was the", "Which team", "How long",
    "What kind of", "Why did", "Who wrote", "What was the name of", "Which country", "How much", "Where is",
    "When did", "Who invented", "What is the", "Which city", "How far",
]
RESTART_SEPS = [" ", ", ", " uh ", " um, ", "... ", " er "]
_LOWER_STARTS = {"what", "which", "who", "whose", "where", "when", "why", "how", "in", "at", "is", "can",
                 "does", "do"}
# Mix of kinds.
_KIND_WEIGHTS = {"correction": 0.32, "restart": 0.14, "filler": 0.2, "typo": 0.19, "mixed": 0.15}

_BRACKET = re.compile(r"\[([^|\]]+)\|([^\]]+)\]")


def _parse(q: str) -> tuple[str, tuple[str, str, str, str] | None]:
    m = _BRACKET.search(q)
    if not m:
        return q, None
    prefix, suffix = q[: m.start()], q[m.end():]
    return prefix + m.group(1) + suffix, (prefix, m.group(1), m.group(2), suffix)


def lower_first(q: str) -> str:
    """``q`` with its first letter lowered when it is a question or function word (it then follows a cue)."""
    first = q.split()[0]
    return q[0].lower() + q[1:] if first.lower() in _LOWER_STARTS else q


def _correction(clean: str, entity, rng: random.Random) -> str:
    cue = rng.choice(SPOKEN_CORRECTIONS)
    if entity is not None and rng.random() < 0.6:
        prefix, right, wrong, suffix = entity
        if rng.random() < 0.4:
            return f"{prefix}{wrong}, {cue}, {right}{suffix}"
        return f"{prefix}{wrong} {cue} {right}{suffix}"
    first = clean.split()[0].lower()
    start = rng.choice([s for s in WRONG_STARTS if s.split()[0].lower() != first])
    return f"{start} {cue} {lower_first(clean)}"


def _restart(clean: str, rng: random.Random) -> str:
    words = clean.split()
    k = rng.randint(1, max(1, min(3, len(words) - 2)))
    return " ".join(words[:k]) + rng.choice(RESTART_SEPS) + lower_first(clean)


def _filler(clean: str, rng: random.Random) -> str:
    words = clean.split()
    n = 1 if len(words) < 6 or rng.random() < 0.6 else 2
    for j in range(n):
        filler = rng.choice(SPOKEN_FILLERS)
        pos = rng.randint(0 if j == 0 else 1, len(words) - 1)  # never after the last word (it has the "?")
        if pos == 0:
            words = [filler.capitalize() + ",", lower_first(" ".join(words)).split()[0], *words[1:]]
        else:
            words = [*words[:pos], filler + ("," if rng.random() < 0.3 else ""), *words[pos:]]
    return " ".join(words)


def _messy(kind: str, clean: str, entity, rng: random.Random) -> str:
    if kind == "correction":
        return _correction(clean, entity, rng)
    if kind == "restart":
        return _restart(clean, rng)
    if kind == "filler":
        return _filler(clean, rng)
    if kind == "typo":
        return add_typos(clean, rng, rate=0.06)
    base = rng.choice(["correction", "restart", "filler"])
    return add_typos(_messy(base, clean, entity, rng), rng, rate=0.04)


def _records(split: str, questions: list[str], n: int, rng: random.Random) -> list[dict]:
    kinds, weights = list(_KIND_WEIGHTS), list(_KIND_WEIGHTS.values())
    per = [n // len(questions) + (1 if i < n % len(questions) else 0) for i in range(len(questions))]
    records: list[dict] = []
    seen: set[str] = set()
    for q, m in zip(questions, per):
        clean, entity = _parse(q)
        made = 0
        while made < m:
            kind = rng.choices(kinds, weights=weights)[0]
            messy = _messy(kind, clean, entity, rng)
            if messy in seen or messy == clean:
                continue
            seen.add(messy)
            records.append({"id": f"{split}-{len(records):03d}-{kind}", "input": messy, "target": clean})
            made += 1
    return records


def generate_sample(seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(train, valid): about 300 and 80 canonical records; no clean question is in both."""
    rng = random.Random(seed)
    questions = list(QUESTIONS)
    rng.shuffle(questions)
    valid_q, train_q = questions[:N_VALID_QUESTIONS], questions[N_VALID_QUESTIONS:]
    train = _records("train", train_q, N_TRAIN, rng)
    valid = _records("valid", valid_q, N_VALID, rng)
    return train, valid


def sample_kind(record_id: str) -> str | None:
    """The kind a sample record was generated as (the last part of its id), or None for other ids."""
    kind = record_id.rsplit("-", 1)[-1]
    return kind if kind in SAMPLE_KINDS else None


def write_sample(out_dir=SAMPLE_DIR) -> None:
    """Write ``train.json`` and ``valid.json`` of :func:`generate_sample` (seed 0) into ``out_dir``."""
    train, valid = generate_sample(0)
    out_dir = Path(out_dir)
    for name, records in (("train.json", train), ("valid.json", valid)):
        atomic_write_text(out_dir / name, json.dumps(records, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    write_sample()
