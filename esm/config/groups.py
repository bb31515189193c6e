"""Rules that span mappings: a `rate_limit_group` is one set of token buckets shared by
every mapping that names it (one service behind several topics), so its limits must be
stated once, or the same way everywhere.

A mapping that names a group without its own `rate_limit` takes the group's; mappings that
state one must agree; a group nobody gives a `rate_limit` is an error, since it would
limit nothing.
"""

from __future__ import annotations

from dataclasses import replace

from esm.config.types import MappingConfig, RateLimit


def resolve_rate_limit_groups(
    mappings: list[MappingConfig],
) -> tuple[list[MappingConfig], list[str]]:
    """`mappings` with each group's limits filled in, and every problem found."""
    limits: dict[str, tuple[RateLimit, MappingConfig]] = {}
    problems: list[str] = []
    for mapping in mappings:
        group, limit = mapping.rate_limit_group, mapping.rate_limit
        if group is None or limit is None:
            continue
        first = limits.setdefault(group, (limit, mapping))
        if first[0] != limit:
            problems.append(
                f"{mapping.source_file}: mapping {mapping.name!r}: rate_limit differs from "
                f"the one mapping {first[1].name!r} gives rate_limit_group {group!r} "
                f"({_describe(limit)} vs {_describe(first[0])}); a group shares one set of "
                "buckets, so state its limits once or the same way everywhere")
    resolved = []
    for mapping in mappings:
        group = mapping.rate_limit_group
        if group is not None and mapping.rate_limit is None:
            if group not in limits:
                problems.append(
                    f"{mapping.source_file}: mapping {mapping.name!r}: rate_limit_group "
                    f"{group!r} has no rate_limit in any mapping; add rate_limit to one")
                resolved.append(mapping)
                continue
            mapping = replace(mapping, rate_limit=limits[group][0])
        resolved.append(mapping)
    return resolved, problems


def _describe(limit: RateLimit) -> str:
    parts = [f"{name}={value:g}" for name, value in (
        ("records_per_second", limit.records_per_second),
        ("invocations_per_second", limit.invocations_per_second),
        ("burst", limit.burst)) if value is not None]
    return "{" + ", ".join(parts) + "}"
