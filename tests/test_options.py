"""Options written once: a dataclass's fields become a command's flags and come back as the same dataclass."""

import argparse
import dataclasses
from dataclasses import dataclass

import pytest

from qrewrite.cli.main import build_parser
from qrewrite.data.prepare import PrepareOptions
from qrewrite.errors import ConfigError
from qrewrite.eval.options import EvaluateOptions
from qrewrite.flags import add_options, from_args, option, positive_int
from qrewrite.infer.decoding import Decoding
from qrewrite.serve.options import ServeOptions, Settings


@dataclass(frozen=True)
class Inner:
    depth: int = option(2, "how deep", parse=positive_int)


@dataclass(kw_only=True, frozen=True)
class Toy:
    name: str = option(help="required")
    inner: Inner = option(Inner())
    quiet: bool = option(True, "talk", flag="--talk", action="store_false")
    tags: list[str] = option(help="repeatable", default_factory=list, flag="--tag", action="append")
    token: str | None = option(None, "from the environment", env="TOY_TOKEN")
    hidden: int = option(7, "not an option", cli=False)


def toy_parser():
    p = argparse.ArgumentParser()
    add_options(p, Toy)
    return p


def test_fields_round_trip_through_the_command_line(monkeypatch):
    monkeypatch.setenv("TOY_TOKEN", "t0k")
    args = toy_parser().parse_args(["--name", "x", "--depth", "5", "--talk", "--tag", "a", "--tag", "b"])
    assert from_args(Toy, args) == Toy(name="x", inner=Inner(depth=5), quiet=False, tags=["a", "b"], token="t0k")
    defaults = from_args(Toy, toy_parser().parse_args(["--name", "y"]))
    assert defaults.inner == Inner() and defaults.quiet and defaults.tags == [] and defaults.hidden == 7


def test_required_fields_and_value_parsers_are_enforced(capsys):
    for argv in ([], ["--name", "x", "--depth", "0"]):
        with pytest.raises(SystemExit):
            toy_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert "--name" in err and "must be a whole number >= 1" in err
    assert "--hidden" not in toy_parser().format_help()


@pytest.mark.parametrize("argv,cls", [
    (["evaluate", "--model", "copy", "--data", "d.json", "--out", "o", "--num-beams", "4", "--copy-bonus", "1",
      "--limit", "3", "--few-shot", "2"], EvaluateOptions),
    (["serve", "--model", "copy", "--port", "9000", "--max-queue", "99", "--request-timeout", "2",
      "--cors-origin", "http://a", "--prompt-lookup-tokens", "0"], ServeOptions),
    (["prepare", "--source", "raw", "--no-typo-eval", "--valid-split", "topic", "--valid-size", "5"], PrepareOptions),
])
def test_each_command_parses_into_its_one_declaration(argv, cls):
    opts = from_args(cls, build_parser().parse_args(argv))
    flags = {a.dest for a in build_parser()._subparsers._group_actions[0].choices[argv[0]]._actions}
    declared = {f.name for f in dataclasses.fields(cls) if f.metadata.get("cli", True)} - {"decoding", "settings"}
    assert declared <= flags  # every declared field is an option of the command
    if cls is EvaluateOptions:
        assert opts.decoding == Decoding(num_beams=4, copy_bonus=1.0) and (opts.limit, opts.few_shot) == (3, 2)
    elif cls is ServeOptions:
        assert opts.port == 9000 and opts.prompt_lookup_tokens == 0
        assert opts.settings == Settings(max_queue=99, request_timeout_s=2.0, cors_origins=["http://a"])
    else:
        assert (opts.typo_eval, opts.valid_split, opts.valid_size) == (False, "topic", 5)


def test_quantization_without_the_engine_is_refused_wherever_the_options_are_made():
    with pytest.raises(ConfigError, match="--engine ctranslate2"):
        EvaluateOptions(model="m", data="d", out="o", quantization="int8")
