"""Load the YAML configuration into `esm.config_types.Config`, strictly, all problems at once.

`load_config(paths, env)` reads files and directories (every *.yaml / *.yml inside, sorted),
substitutes `${VAR}` / `${VAR:-default}` (`$${` is a literal `${`) from `env` in string
values, and builds frozen values; any problem raises `ConfigError` listing every problem as
`FILE: mappings[0].key.path: problem`. `validate_files` returns the problems instead.
Mapping keys are AWS's parameter names in snake_case with AWS's defaults and ranges
(ESM-SPEC §1.2, checklist §8 items 1–10); defaults and rules that depend on the source come
from its class's `traits` (`esm.interfaces.SourceTraits`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, is_dataclass
from typing import Any, Literal

import yaml

from esm.config_types import (
    Config,
    ConnectorSpec,
    LoggingConfig,
    MappingConfig,
    RetryBackoff,
    ServerConfig,
)
from esm.errors import ConfigError, FilterPatternError
from esm.interfaces import SourceTraits
from esm.registry import Kind, resolve
from esm.schema import Substituted, at, build, describe, join


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

    mappings: tuple[Any, ...] = ()
    server: _Server | None = None
    logging: _Logging | None = None
    shutdown_timeout_seconds: float | None = field(default=None, metadata={
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
    data, problems = _read_yaml(file)
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


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, which plain YAML loading silently merges."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)



def _read_yaml(file: str) -> tuple[object, list[str]]:
    """The parsed document, or `FILE:LINE:COLUMN: problem`. The offending line's text is not
    echoed, since it may hold a secret."""
    try:
        with open(file, encoding="utf-8") as stream:
            return yaml.load(stream, Loader=_StrictLoader), []  # noqa: S506 (a SafeLoader)
    except OSError as exc:
        return None, [f"{file}: cannot read: {exc.strerror}"]
    except UnicodeDecodeError as exc:
        return None, [f"{file}: not UTF-8 text (byte {exc.start})"]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        context = f" ({exc.context})" if exc.context else ""
        return None, [f"{where}: YAML syntax error: {exc.problem}{context}"]
    except yaml.YAMLError as exc:
        return None, [f"{file}: YAML error: {exc}"]


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



# ---- one mapping -------------------------------------------------------------------------

NAME_PATTERN = r"[a-z0-9][a-z0-9_.-]*"
MAX_FILTERS = 10  # AWS: 5 by default, up to 10 with a quota raise (ESM-SPEC §1.2)
MAX_PATTERN_CHARS = 4096
UNSUPPORTED_DESTINATION = ("Unsupported DestinationConfig parameter for given event source "
                           "mapping type.")
WINDOW_NEEDED = ("Maximum batch window in seconds must be greater than 0 if maximum batch "
                 "size is greater than 10")
_STREAM_ONLY = ("bisect_batch_on_function_error", "maximum_retry_attempts",
                "maximum_record_age_in_seconds", "parallelization_factor")


@dataclass(frozen=True, slots=True)
class _Filter:
    pattern: str | dict[str, Any]  # a mapping is stored as its JSON text


@dataclass(frozen=True, slots=True)
class _FilterCriteria:
    filters: tuple[_Filter, ...] = ()


@dataclass(frozen=True, slots=True)
class _Scaling:
    maximum_concurrency: int | None = field(default=None, metadata={"min": 2, "max": 1000})


@dataclass(frozen=True, slots=True)
class _Destinations:
    on_failure: dict[str, Any] | None = None  # {type, include_payload, ...settings}


@dataclass(frozen=True, slots=True)
class _Backoff:
    initial_seconds: float = field(default=1.0, metadata={"min": 0, "max": 3600})
    maximum_seconds: float = field(default=60.0, metadata={"min": 0, "max": 86400})
    multiplier: float = field(default=2.0, metadata={"min": 1, "max": 100})
    jitter: bool = True


@dataclass(frozen=True, slots=True)
class _Mapping:
    """A mapping's keys as written; None means "not given, use the source's default"."""

    name: str = field(metadata={"pattern": NAME_PATTERN, "max_length": 64})
    source: dict[str, Any]
    target: dict[str, Any]
    enabled: bool = True
    filter_criteria: Any = None  # checked by `_patterns`, even when other keys are wrong
    batch_size: int | None = field(default=None, metadata={"min": 1, "max": 10000})
    maximum_batching_window_in_seconds: float | None = field(
        default=None, metadata={"min": 0, "max": 300})
    function_response_types: tuple[Literal["ReportBatchItemFailures"], ...] = field(
        default=(), metadata={"max_items": 1})
    bisect_batch_on_function_error: bool = False
    maximum_retry_attempts: int = field(
        default=-1, metadata={"min": 0, "max": 10000, "allow": (-1,)})
    maximum_record_age_in_seconds: int = field(
        default=-1, metadata={"min": 60, "max": 604800, "allow": (-1,)})
    parallelization_factor: int | None = field(default=None, metadata={"min": 1, "max": 10})
    tumbling_window_in_seconds: int = field(default=0, metadata={"min": 0, "max": 900})
    scaling_config: _Scaling | None = None
    destination_config: _Destinations | None = None
    retry_backoff: _Backoff = field(default_factory=_Backoff)


def build_mapping(raw: object, path: str, file: str) -> tuple[MappingConfig | None, list[str]]:
    """One mapping from its YAML data at `path`, or None with every problem found."""
    if not isinstance(raw, dict):
        return None, [f"{path}: must be a mapping, got {describe(raw)}"]
    problems: list[str] = []
    raw = _without_on_success(raw, path, problems)
    keys, key_problems = build(_Mapping, raw, path)
    problems += key_problems
    source = _connector("sources", raw.get("source"), join(path, "source"), problems)
    target = _connector("targets", raw.get("target"), join(path, "target"), problems)
    on_failure, include_payload = _on_failure(raw, path, problems)
    patterns = _patterns(raw.get("filter_criteria"), path, problems)
    if keys is None:
        return None, problems
    rules = _source_rules(keys, raw, source, path, problems) if source else {}
    if problems or source is None or target is None:
        return None, problems
    return MappingConfig(
        name=keys.name, source=source, target=target, enabled=keys.enabled,
        on_failure=on_failure, include_payload=include_payload, filter_patterns=patterns,
        function_response_types=keys.function_response_types,
        bisect_batch_on_function_error=keys.bisect_batch_on_function_error,
        maximum_record_age_in_seconds=keys.maximum_record_age_in_seconds,
        parallelization_factor=keys.parallelization_factor or 1,
        maximum_concurrency=keys.scaling_config.maximum_concurrency
        if keys.scaling_config else None,
        max_deliveries=getattr(source.settings, "max_deliveries", None),
        target_timeout_seconds=float(getattr(target.settings, "timeout_seconds", 3.0)),
        retry_backoff=RetryBackoff(**{f: getattr(keys.retry_backoff, f) for f in (
            "initial_seconds", "maximum_seconds", "multiplier", "jitter")}),
        source_file=file, **rules), []


def _without_on_success(raw: dict[str, Any], path: str, problems: list[str]) -> dict[str, Any]:
    """ESM-SPEC §1.3: an OnSuccess destination is rejected with AWS's own message."""
    destinations = raw.get("destination_config")
    if not isinstance(destinations, dict) or "on_success" not in destinations:
        return raw
    problems.append(f"{path}.destination_config.on_success: {UNSUPPORTED_DESTINATION}")
    rest = {k: v for k, v in destinations.items() if k != "on_success"}
    return {**raw, "destination_config": rest}


def _connector(kind: Kind, raw: object, path: str, problems: list[str],
               reserved: tuple[str, ...] = ()) -> ConnectorSpec | None:
    """`{type, ...settings}` → the registered class and its parsed `Settings`."""
    if not isinstance(raw, dict):
        return None  # the mapping's own schema reports a missing or non-mapping value
    type_name = raw.get("type")
    if not isinstance(type_name, str):
        problems.append(f"{path}: missing required key 'type'" if type_name is None else
                        f"{path}.type: must be a string, got {describe(type_name)}")
        return None
    try:
        cls = resolve(kind, type_name)
    except ConfigError as exc:
        problems += [f"{path}.type: {problem}" for problem in exc.problems]
        return None
    settings_cls = getattr(cls, "Settings", None)
    if not (isinstance(settings_cls, type) and is_dataclass(settings_cls)):
        problems.append(f"{path}.type: {type_name!r} declares no Settings dataclass")
        return None
    data = {k: v for k, v in raw.items() if k != "type" and k not in reserved}
    settings, settings_problems = build(settings_cls, data, path)
    problems += settings_problems
    return None if settings is None else ConnectorSpec(type_name, cls, settings)


def _on_failure(raw: dict[str, Any], path: str,
                problems: list[str]) -> tuple[ConnectorSpec | None, bool]:
    """The on-failure destination and its `include_payload` flag (default true, DESIGN §7)."""
    destinations = raw.get("destination_config")
    spec = destinations.get("on_failure") if isinstance(destinations, dict) else None
    if not isinstance(spec, dict):
        return None, True
    where = join(path, "destination_config.on_failure")
    include_payload = spec.get("include_payload", True)
    if not isinstance(include_payload, bool):
        problems.append(f"{where}.include_payload: must be a boolean, "
                        f"got {describe(include_payload)}")
    connector = _connector("destinations", spec, where, problems, ("include_payload",))
    return connector, include_payload is not False


def _patterns(raw: object, path: str, problems: list[str]) -> tuple[str, ...]:
    """FilterCriteria patterns as JSON text, each compiled once to prove it valid
    (ESM-SPEC §1.2 limits, §3.6 validation)."""
    from esm.filtering import compile_pattern  # lazily: only configs with filters need it

    criteria, criteria_problems = build(_FilterCriteria, {} if raw is None else raw,
                                        join(path, "filter_criteria"))
    problems += criteria_problems
    filters = criteria.filters if criteria else ()
    where = f"{path}.filter_criteria.filters"
    if len(filters) > MAX_FILTERS:
        problems.append(f"{where}: at most {MAX_FILTERS} filters are allowed (AWS's default "
                        f"quota is 5, raised up to {MAX_FILTERS}), got {len(filters)}")
    patterns = []
    for index, item in enumerate(filters):
        text = item.pattern if isinstance(item.pattern, str) else json.dumps(
            item.pattern, default=str)
        if len(text) > MAX_PATTERN_CHARS:
            problems.append(f"{where}[{index}].pattern: must be at most {MAX_PATTERN_CHARS} "
                            f"characters, got {len(text)}")
            continue
        try:
            compile_pattern(text)
        except FilterPatternError as exc:
            problems.append(f"{where}[{index}].pattern: Invalid filter pattern definition: "
                            f"{'; '.join(exc.problems)}")
        patterns.append(text)
    return tuple(patterns)


def _source_rules(keys: _Mapping, raw: dict[str, Any], source: ConnectorSpec, path: str,
                  problems: list[str]) -> dict[str, Any]:
    """Defaults and rules that depend on the source type (ESM-SPEC §1.2, §4.4, §8 1–10)."""
    traits = getattr(source.cls, "traits", None)
    if not isinstance(traits, SourceTraits):
        problems.append(f"{path}.source.type: {source.type!r} declares no SourceTraits")
        return {}
    batch_size = keys.batch_size or traits.default_batch_size
    window = keys.maximum_batching_window_in_seconds
    window = traits.default_batching_window_seconds if window is None else window
    retries = keys.maximum_retry_attempts
    has_on_failure = bool(keys.destination_config and keys.destination_config.on_failure)
    if batch_size > traits.max_batch_size:
        problems.append(f"{path}.batch_size: must be 1–{traits.max_batch_size} for a "
                        f"{source.type} source, got {batch_size}")
    # Only an explicit batch size triggers it: the defaults of every source are valid.
    if traits.window_required_above_10 and keys.batch_size and batch_size > 10 and window == 0:
        problems.append(f"{path}.maximum_batching_window_in_seconds: {WINDOW_NEEDED}")
    if keys.tumbling_window_in_seconds:
        problems.append(f"{path}.tumbling_window_in_seconds: tumbling windows are not "
                        f"supported yet; only 0 is accepted, got {keys.tumbling_window_in_seconds}")
    if traits.family == "queue":
        problems += [f"{path}.{key}: applies only to stream sources; {source.type!r} is a "
                     "queue source, whose broker redelivers failed records"
                     for key in _STREAM_ONLY if key in raw]
    elif raw.get("parallelization_factor", 1) != 1 and not traits.supports_parallelization_factor:
        problems.append(f"{path}.parallelization_factor: applies only to Kinesis and DynamoDB "
                        f"Streams sources (ESM-SPEC §1.2); {source.type!r} records carry no "
                        "partition or item key to keep order by")
    if has_on_failure and not traits.supports_on_failure_destination:
        problems.append(f"{path}.destination_config.on_failure: {UNSUPPORTED_DESTINATION} "
                        f"({source.type!r} sources do not support on-failure destinations)")
    if has_on_failure and retries == -1 and traits.caps_infinite_retries_with_destination:
        retries = 10  # ESM-SPEC §4.4: infinite retries with a destination means 10
    problems += _hook_problems(source, raw, batch_size, window, path)
    return {"batch_size": batch_size, "maximum_batching_window_in_seconds": window,
            "maximum_retry_attempts": retries}


def _hook_problems(source: ConnectorSpec, raw: dict[str, Any], batch_size: int,
                   window: float, path: str) -> list[str]:
    """The source's own `check_mapping(settings, mapping_data)` rules, under `path`. The data
    is the mapping as written, with batch size and window set to their effective values."""
    hook = getattr(source.cls, "check_mapping", None)
    if not callable(hook):
        return []
    data = {**raw, "batch_size": batch_size, "maximum_batching_window_in_seconds": window}
    # A problem that starts with a key path ("batch_size: ...") is joined onto the mapping's.
    return [f"{path}.{p}" if _KEYED.match(p) else f"{path}: {p}"
            for p in hook(source.settings, data)]


_KEYED = re.compile(r"[A-Za-z_][\w.\[\]]*: ")
