"""The configuration layer of both programs: a table of typed keys, loaded and checked.

Values come from a YAML file, then the environment, then the command line, each winning over the
one before. A program declares each key once, ``Key("timeouts.dns", kinds.positive)``: its
dotted name and a converter (probe/kinds.py) that returns the checked value or raises
ValueError(why). Whatever is wrong stops the load with one `ConfigError`, whose one-line message
names where the value came from, the dotted key and the reason: ``probe.yaml: timeouts.dns: must
be a positive number, got 'abc'``; an unknown key's reason lists the keys known beside it. A null
value means "not given" (the key keeps its default). A key ``a.b`` is also the environment
variable ``<PREFIX>A_B``, its value read as YAML.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

COMMAND_LINE = "command line"
ENVIRONMENT = "environment"


class UsageError(Exception):
    """Bad usage on the command line: a message naming the argument, file or key at fault
    (exit status 2)."""


class Parser(argparse.ArgumentParser):
    """An argument parser that raises UsageError instead of printing and exiting, so that each
    program reports bad usage in its own one-line shape."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


class ConfigError(Exception):
    """A configuration that cannot be used: names the file, the dotted key and the reason."""

    def __init__(self, file: str, key: str, why: str) -> None:
        super().__init__(f"{file}: {key}: {why}")
        self.file, self.key, self.why = file, key, why


@dataclass(frozen=True)
class Key:
    """One key: its dotted name, the converter that checks its value, and how it is placed."""

    name: str
    convert: Callable[[Any], Any]
    path: bool = False  # a file path: relative to the file's directory (else the working one)
    words: tuple[str, ...] = ()  # values of a path key that are words, not paths
    attr: str = ""  # the field of a flat configuration class (default: the name, "." -> "_")

    @property
    def field(self) -> str:
        """Return the field of a flat configuration class that holds this key."""
        return self.attr or self.name.replace(".", "_")


@dataclass(frozen=True)
class Values:
    """The checked values of one load, by dotted key, and where each came from."""

    checked: dict[str, Any]
    origins: dict[str, str]
    file: str | None

    def error(self, key: str, why: str) -> ConfigError:
        """Return the error for ``key``, blaming where its value came from (else the file)."""
        return ConfigError(self.origins.get(key, self.file or COMMAND_LINE), key, why)


class Table:
    """One program's keys, and the reading of its file, environment and command line."""

    def __init__(self, env_prefix: str, keys: Iterable[Key]) -> None:
        self.keys = {k.name: k for k in keys}
        self.sections = {k.partition(".")[0] for k in self.keys if "." in k}
        if not env_prefix:
            raise ValueError("an environment prefix is needed (SURBLOCAGE_<PROGRAM>_)")
        self.env_prefix = env_prefix
        self.variables = {self.variable(k): k for k in self.keys}
        if len(self.variables) != len(self.keys):
            raise ValueError("two keys share one environment variable")

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys)

    def variable(self, key: str) -> str:
        """Return the environment variable of ``key`` (timeouts.dns: PREFIX_TIMEOUTS_DNS)."""
        return self.env_prefix + key.replace(".", "_").upper()

    def load(
        self,
        path: str | os.PathLike[str] | None,
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Values:
        """Read ``path`` (None: no file), then the environment, then the dotted-key
        ``overrides`` (None values skipped); check every value given."""
        file = None if path is None else str(path)
        given: dict[str, tuple[str, Path, Any]] = {}  # key -> (origin, base of paths, value)
        if file is not None:
            base = Path(file).parent
            given.update({k: (file, base, v) for k, v in self._read_file(file).items()})
        given.update(self._read_environment(os.environ if environ is None else environ))
        for key, value in (overrides or {}).items():
            if key not in self.keys:
                raise ConfigError(COMMAND_LINE, key, self.unknown(key))
            if value is not None:
                given[key] = (COMMAND_LINE, Path.cwd(), value)
        checked, origins = {}, {}
        for key, (origin, base, value) in given.items():
            if value is not None:  # null in the file: the key keeps its default
                checked[key] = self._check(key, origin, self._resolve(key, value, base))
                origins[key] = origin
        return Values(checked, origins, file)

    def unknown(self, key: str) -> str:
        """Say that ``key`` is unknown, listing the keys known at its level."""
        head, _, tail = key.partition(".")
        if tail and head in self.sections:
            known = [k for k in self.keys if k.startswith(head + ".")]
        else:
            known = list(dict.fromkeys(k.partition(".")[0] for k in self.keys))
        return f"unknown key (known: {', '.join(known)})"

    def _check(self, key: str, origin: str, value: Any) -> Any:
        try:
            return self.keys[key].convert(value)
        except ValueError as e:
            raise ConfigError(origin, key + getattr(e, "subkey", ""), str(e)) from None

    def _resolve(self, key: str, value: Any, base: Path) -> Any:
        k = self.keys[key]

        def resolve(item: Any) -> Any:
            if not isinstance(item, str) or item in k.words:
                return item
            return str(base / Path(item).expanduser())  # an absolute path wins over base

        if not k.path:
            return value
        return [resolve(v) for v in value] if isinstance(value, list) else resolve(value)

    def _read_file(self, file: str) -> dict[str, Any]:
        flat = {}
        for key, value in read_yaml(file).items():
            if key in self.sections and key not in self.keys:
                if value is None:
                    continue  # a section whose keys are all commented out
                if not isinstance(value, dict):
                    raise ConfigError(file, str(key), "expected a mapping of keys")
                flat.update({f"{key}.{sub}": v for sub, v in value.items()})
            else:
                flat[str(key)] = value
        for key in flat:
            if key not in self.keys:
                raise ConfigError(file, key, self.unknown(key))
        return flat

    def _read_environment(self, environ: Mapping[str, str]) -> dict[str, tuple[str, Path, Any]]:
        out = {}
        for name, text in environ.items():
            if not name.startswith(self.env_prefix):
                continue
            if name not in self.variables:
                why = f"unknown variable (known: {', '.join(self.variables)})"
                raise ConfigError(ENVIRONMENT, name, why)
            origin = f"{ENVIRONMENT} {name}"
            try:
                value = yaml.load(text, Loader=Loader)
            except yaml.YAMLError:
                value = text  # not YAML: taken as the text it is
            if value is not None:
                out[self.variables[name]] = (origin, Path.cwd(), value)
        return out


def overrides_from(
    args: argparse.Namespace, options: Mapping[str, str | tuple[str, ...]]
) -> dict[str, Any]:
    """Map the command-line options given onto dotted keys: ``options`` names the key (or keys)
    each argparse destination sets; an option left out (None) sets nothing, so the file's
    value or the default stands."""
    out: dict[str, Any] = {}
    for dest, keys in options.items():
        value = getattr(args, dest, None)
        if value is not None:
            out.update(dict.fromkeys((keys,) if isinstance(keys, str) else keys, value))
    return out


def add_off_switch(parser: Any, flag: str, dest: str, help: str) -> None:
    """Add the option ``flag`` (--no-X) to an argparse parser or group: ``dest`` is False when
    it is given and None when not, so that the file or the default decides."""
    parser.add_argument(flag, dest=dest, action="store_false", default=None, help=help)


# ---------------------------------------------------------------- reading YAML


class Loader(yaml.SafeLoader):
    """YAML 1.1 without base-60 integers: ``start: 20:45`` stays a time, not 1245."""


Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in rs if tag != "tag:yaml.org,2002:int"]
    for first, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(0|[1-9][0-9_]*)$"), list("-+0123456789")
)


def read_yaml(file: str) -> dict[str, Any]:
    """Return the mapping ``file`` holds ({} when empty); ConfigError naming the line at fault."""
    try:
        data = yaml.load(Path(file).read_text(encoding="utf-8"), Loader=Loader)
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(file, "file", f"cannot read it ({e})") from None
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else 0
        raise ConfigError(file, f"line {line}", f"not valid YAML ({e.problem})") from None
    except yaml.YAMLError as e:
        raise ConfigError(file, "file", f"not valid YAML ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(file, "file", "expected a mapping of keys")
    return data
