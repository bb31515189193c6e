"""Load the YAML configuration into `esm.config.types.Config`, strictly, all problems at once.

`load_config(paths, env)` reads files and directories (every *.yaml / *.yml inside, sorted),
substitutes `${VAR}` / `${VAR:-default}` (`$${` is a literal `${`) from `env` in string
values, and builds frozen values; any problem raises `ConfigError` listing every problem as
`FILE: mappings[0].key.path: problem`. `validate_files` returns the problems instead.
Each mapping is checked by `esm.config.mapping.build_mapping` (AWS's parameter names in
snake_case with AWS's defaults and ranges, ESM-SPEC §1.2, checklist §8 items 1–10); this
module owns the files, the substitution, the top-level sections and cross-file rules.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from esm.config.groups import resolve_rate_limit_groups
from esm.config.mapping import build_mapping
from esm.config.schema import Substituted, at, build, join
from esm.config.types import Config, LoggingConfig, MappingConfig, ServerConfig
from esm.config.yaml_reader import read_yaml
from esm.errors import ConfigError


@dataclass(frozen=True, slots=True)
class _Server:
    listen: str = field(default="127.0.0.1:9102", metadata={
        "pattern": r"\S*:\d{1,5}", "doc": "host:port of the metrics and admin server"})
    auth_token: str | None = field(default=None, metadata={
        "secret": True, "doc": "bearer token required by mutating admin endpoints"})
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class _Logging:
    format: Literal["text", "json"] = "text"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"


@dataclass(frozen=True, slots=True)
class _File:
    """One file's top level; mappings are checked one by one by `build_mapping`."""

    # Not optional: a section written with nothing under it (YAML null) is a problem to
    # report, not a missing section (which takes these defaults).
    mappings: tuple[Any, ...] = ()
    server: _Server = field(default_factory=_Server)
    logging: _Logging = field(default_factory=_Logging)
    shutdown_timeout_seconds: float = field(default=30.0, metadata={
        "min": 0.1, "max": 3600, "doc": "budget for draining in-flight work on SIGTERM"})


_SECTIONS = ("server", "logging", "shutdown_timeout_seconds")
# `$${` escapes; `${NAME}` / `${NAME:-default}` substitute; any other `${` is malformed.
_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")


def load_config(paths: Sequence[str], env: Mapping[str, str]) -> Config:
    """The configuration in `paths`; ConfigError with every problem when it is invalid."""
    config, problems = _load(paths, env)
    if problems or config is None:
        raise ConfigError(problems or ["no configuration"])
    return config


def validate_files(paths: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """Every problem in the configuration at `paths`; empty when it is valid."""
    return _load(paths, env)[1]


def _load(paths: Sequence[str], env: Mapping[str, str]) -> tuple[Config | None, list[str]]:
    files, problems = _expand(paths)
    sections: dict[str, tuple[str, Any]] = {}
    mappings: list[MappingConfig] = []
    for file in files:
        problems += _load_file(file, env, sections, mappings)
    problems += _duplicate_names(mappings)
    mappings, group_problems = resolve_rate_limit_groups(mappings)
    problems += group_problems
    if files and not mappings and not problems:
        problems.append(f"{', '.join(files)}: no mappings configured (add a `mappings:` list)")
    if problems:
        return None, problems
    server = sections.get("server", ("", _Server()))[1]
    logging = sections.get("logging", ("", _Logging()))[1]
    timeout = sections.get("shutdown_timeout_seconds", ("", 30.0))[1]
    return Config(
        mappings=tuple(mappings),
        server=ServerConfig(server.listen, server.auth_token, server.enabled),
        logging=LoggingConfig(logging.format, logging.level),
        shutdown_timeout_seconds=timeout, files=tuple(files)), []


def _expand(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """Files named directly, plus every *.yaml / *.yml directly inside a named directory."""
    files: list[str] = []
    problems: list[str] = []
    if not paths:
        problems.append("no configuration file given")
    for path in paths:
        if os.path.isdir(path):
            found = sorted(n for n in os.listdir(path) if n.endswith((".yaml", ".yml")))
            files += [os.path.join(path, n) for n in found
                      if os.path.isfile(os.path.join(path, n))]
            if not found:
                problems.append(f"{path}: directory holds no *.yaml or *.yml file")
        elif os.path.isfile(path):
            files.append(path)
        else:
            problems.append(f"{path}: no such file or directory")
    return files, problems


def _load_file(file: str, env: Mapping[str, str], sections: dict[str, tuple[str, Any]],
               mappings: list[MappingConfig]) -> list[str]:
    """Check one file, adding its sections and mappings; its problems, prefixed `FILE: `."""
    data, problems = read_yaml(file)
    if problems:
        return problems
    data = {} if data is None else _substitute(data, env, "", problems)
    top, top_problems = build(_File, data, "")
    problems += top_problems
    if top is not None:
        for key in _SECTIONS:
            if key not in data:
                continue
            if key in sections:
                problems.append(f"{key}: already set in {sections[key][0]}; set it only once")
            else:
                sections[key] = (file, getattr(top, key))
    raw_mappings = data.get("mappings") if isinstance(data, dict) else None
    for index, raw in enumerate(raw_mappings if isinstance(raw_mappings, list) else ()):
        mapping, mapping_problems = build_mapping(raw, f"mappings[{index}]", file)
        problems += mapping_problems
        if mapping is not None:
            mappings.append(mapping)
    return [p if p.startswith(f"{file}:") else f"{file}: {p}" for p in problems]


def _duplicate_names(mappings: list[MappingConfig]) -> list[str]:
    """Mapping names are unique across all files: metrics and the admin API key on them."""
    seen: dict[str, str] = {}
    problems = []
    for mapping in mappings:
        if mapping.name in seen:
            problems.append(f"{mapping.source_file}: mapping name {mapping.name!r} is used "
                            f"twice (also in {seen[mapping.name]})")
        seen.setdefault(mapping.name, mapping.source_file)
    return problems


def _substitute(data: Any, env: Mapping[str, str], path: str, problems: list[str]) -> Any:
    """`data` with `${VAR}` references in string values replaced (keys are left alone)."""
    if isinstance(data, str):
        return _substitute_text(data, env, path, problems)
    if isinstance(data, list):
        return [_substitute(v, env, join(path, i), problems) for i, v in enumerate(data)]
    if isinstance(data, dict):
        return {k: _substitute(v, env, join(path, str(k)), problems) for k, v in data.items()}
    return data


def _substitute_text(text: str, env: Mapping[str, str], path: str,
                     problems: list[str]) -> str:
    if "${" not in text:
        return text
    substituted = False

    def replace(match: re.Match[str]) -> str:
        nonlocal substituted
        name, default = match.group(1), match.group(2)
        if match.group(0) == "$${":
            return "${"
        if name is None:
            problems.append(at(path, "malformed ${ reference: write ${NAME} or "
                                     "${NAME:-default} (or $${ for a literal ${)"))
            return match.group(0)
        substituted = True
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                problems.append(at(path, f"environment variable {name!r} is not set "
                                         f"(write ${{{name}:-default}} to give a default)"))
                return ""
            return default
        return value

    result = _REFERENCE.sub(replace, text)
    return Substituted(result) if substituted else result
