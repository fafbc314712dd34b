"""Options written once: a command's options are the fields of one dataclass.

Each field carries its flag's help (and, where a plain ``int`` / ``float`` / ``str`` is not enough, the parser
of its value or its choices); :func:`add_options` turns the dataclass into ``--flag`` options,
:func:`from_args` turns the parsed namespace back into the dataclass, and the function behind the command takes
the dataclass (or the same names as keywords). A field whose type is itself such a dataclass (the decoding, the
server's limits) adds its own fields' flags, so groups shared by several commands are declared once too. The
training config's fields are declared the same way; its flags override a YAML file instead of carrying defaults
(:func:`add_override_options`, :func:`coerce`: the config file and the command line read a value alike).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from dataclasses import MISSING

from qrewrite.errors import ConfigError


def option(default=MISSING, help: str = "", *, parse=None, choices=None, flag: str | None = None,
           action: str | None = None, metavar: str | None = None, env: str | None = None,
           default_factory=MISSING, cli: bool = True, positional: bool = False):
    """A dataclass field that is also a command-line option.

    ``parse``: the value's parser (an argparse type, e.g. :func:`positive_int`); ``flag``: the flag when it is not
    ``--<field-name>``; ``action``: ``store_true`` / ``store_false`` / ``append``; ``env``: an environment variable
    whose value is the flag's default; ``cli=False``: a keyword only (not an option); ``positional``: a
    command-line argument list (``nargs='*'``)."""
    metadata = {"help": help, "parse": parse, "choices": choices, "flag": flag, "action": action,
                "metavar": metavar, "env": env, "cli": cli, "positional": positional}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _scalar(typ):
    """``int | None`` -> int; a dataclass or a plain type as it is."""
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return typing.get_origin(typ) or typ


def _option_fields(cls):
    """(field, its type) for each command-line field; the required ones first (what a command needs leads its
    usage line)."""
    hints = typing.get_type_hints(cls)
    chosen = [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]
    for f in sorted(chosen, key=lambda f: _default(f) is not MISSING):
        yield f, _scalar(hints[f.name])


def _default(f: dataclasses.Field):
    if f.default is not MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not MISSING else MISSING


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls) -> None:
    """One option per field of dataclass ``cls`` (fields that are dataclasses add theirs)."""
    for f, typ in _option_fields(cls):
        if dataclasses.is_dataclass(typ):
            add_options(parser, typ)
            continue
        m, default = f.metadata, _default(f)
        if m.get("env"):
            default = os.environ.get(m["env"], None if default is MISSING else default)
        text = m.get("help", "")
        if default not in (MISSING, None, False, True, []) and "(default" not in text:
            text += f" (default: {default:g})" if isinstance(default, float) else f" (default: {default})"
        kw = {"help": text.replace("%", "%%")}
        if m.get("positional"):
            parser.add_argument(f.name, nargs="*", **kw)
            continue
        kw["dest"] = f.name
        if m.get("action"):
            kw["action"] = m["action"]
            if m["action"] == "append":
                kw.update(default=list(default), metavar=m.get("metavar"), type=m.get("parse"))
        else:
            parse = m.get("parse") or (None if typ is str else typ)  # text needs no parser
            kw.update(type=parse, choices=m.get("choices"), metavar=m.get("metavar"))
            if default is MISSING:
                kw["required"] = True
            else:
                kw["default"] = default
        parser.add_argument(flag(f), **kw)


def flag(f: dataclasses.Field) -> str:
    """The ``--flag`` of an option field."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def flags_of(cls, names=None) -> list[str]:
    """The flags of dataclass ``cls``'s option fields (those named in ``names``, when given), in field order."""
    return [flag(f) for f in dataclasses.fields(cls)
            if f.metadata.get("cli", True) and (names is None or f.name in names)]


def from_args(cls, args: argparse.Namespace):
    """The dataclass ``cls`` holding what the command line said (its defaults where it said nothing)."""
    values = {}
    for f, typ in _option_fields(cls):
        if dataclasses.is_dataclass(typ):
            values[f.name] = from_args(typ, args)
        elif hasattr(args, f.name):
            values[f.name] = getattr(args, f.name)
    return cls(**values)


def add_override_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls, dest_prefix: str) -> None:
    """One ``--flag`` per option field of ``cls`` whose value overrides another source (a config file): nothing
    is set unless given (``dest_prefix + name``, default None), and the value stays text for :func:`coerce`."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True):
            continue
        typ, default, text = hints[f.name], _default(f), f.metadata.get("help", "")
        kw = dict(dest=dest_prefix + f.name, default=None,  # a help that says its default itself keeps it
                  help=(text if "(default" in text else f"{text} (default: {default!r})").replace("%", "%%"))
        if typ is list:
            kw.update(nargs="+", metavar="NAME")
        else:
            kw["metavar"] = "{true,false}" if typ is bool else typ.__name__.upper()
        parser.add_argument(flag(f), **kw)


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def coerce(name: str, typ: type, value):
    """``value`` (from YAML or the command line) as field ``name`` of type ``typ`` (bool, list of str, int, float,
    str) holds it; a ConfigError naming the field otherwise (``2.5`` is no int, ``"yes"`` is a bool)."""
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
                return value.lower() in _TRUE
        elif typ is list:
            if isinstance(value, str):
                return [v for v in value.replace(",", " ").split() if v]
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                return list(value)
        elif typ is int:
            if not isinstance(value, bool) and not (isinstance(value, float) and not value.is_integer()):
                return int(value)
        elif typ is float:
            if not isinstance(value, bool):
                return float(value)
        elif typ is str:
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                return str(value)
    except (TypeError, ValueError, OverflowError):
        pass
    raise ConfigError(f"{name}: expected {typ.__name__}, got {value!r}")


# value parsers for options (argparse types): a clear message names the bound that was broken

def bounded_int(low: int, high: int | None = None):
    """An argparse type: a whole number from ``low`` (to ``high``), with a message saying so."""
    def parse(text: str) -> int:
        value = int(text)
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be a whole number >= {low}" + (f" and <= {high}" if high else "")
                                             + f", got {text}")
        return value
    return parse


positive_int, non_negative_int = bounded_int(1), bounded_int(0)


def probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def open_fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value
