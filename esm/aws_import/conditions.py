"""Evaluate a template's condition functions when the template alone decides them.

`Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or` and `Condition` over values that resolve to
literals (parameters with defaults, `AWS::Partition`, ...). Anything that depends on the
deployment (a parameter without a default, `AWS::Region`) gives None: the `Fn::If` using it
becomes a variable instead of a guess.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from esm.aws_import.intrinsics import Symbol

if TYPE_CHECKING:
    from esm.aws_import.intrinsics import Resolver

_MAX_DEPTH = 20  # conditions naming each other in a cycle are invalid templates


def evaluate(resolver: Resolver, condition: Any, depth: int = 0) -> bool | None:
    if depth > _MAX_DEPTH or not isinstance(condition, dict) or len(condition) != 1:
        return None
    (name, argument), = condition.items()
    if name == "Condition" and isinstance(argument, str):
        return evaluate(resolver, resolver.conditions.get(argument), depth + 1)
    if name == "Fn::Equals" and isinstance(argument, list) and len(argument) == 2:
        left, right = (resolver.resolve(a) for a in argument)
        if _literal(left) and _literal(right):
            return str(left) == str(right)
        return None
    if not isinstance(argument, list):
        return None
    values = [evaluate(resolver, a, depth + 1) for a in argument]
    if name == "Fn::Not" and len(values) == 1 and values[0] is not None:
        return not values[0]
    if name == "Fn::And":
        return False if False in values else (None if None in values else True)
    if name == "Fn::Or":
        return True if True in values else (None if None in values else False)
    return None


def _literal(value: Any) -> bool:
    if isinstance(value, Symbol):
        return False
    return not (isinstance(value, str) and "${" in value)
