"""Fakes for driving the reader and lane workers without threads, sleeps or servers."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from connectors.memory.source import MemoryBroker, MemoryQueueSource, MemorySettings, MemorySource
from esm.clock import FakeClock
from esm.config.types import ConnectorSpec, MappingConfig, RetryBackoff
from esm.errors import InvokeError
from esm.failures.dead_letter import DeadLetterer
from esm.failures.policy import FailurePolicy
from esm.filtering import compile_filters
from esm.interfaces import ConnectorContext
from esm.ops.metrics import Metrics
from esm.ops.status import MappingStatus
from esm.pipeline.lane_worker import LaneWorker
from esm.pipeline.reader import Reader
from esm.records import Event, FunctionFailed, InvokeResult, Record, Returned
from esm.runtime.assembly import build_connector, build_invoker


class ManualExecutor:
    """Runs submitted work only when told to, on the calling thread."""

    def __init__(self) -> None:
        self.pending: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        self.pending.append((fn, args))
        return Future()

    def run_all(self) -> int:
        count = 0
        while self.pending:
            fn, args = self.pending.pop(0)
            fn(*args)
            count += 1
        return count

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self.pending.clear()


class ScriptedTarget:
    """A target whose behaviour per invocation is a function of the record bodies."""

    def __init__(self, behaviour: Callable[[list[dict[str, Any]]], Any] | None = None) -> None:
        self.behaviour = behaviour or (lambda records: None)
        self.calls: list[list[str]] = []
        self._lock = threading.Lock()

    def invoke(self, event: Event, timeout_seconds: float) -> InvokeResult:
        records = json.loads(event.body)["Records"]
        with self._lock:
            self.calls.append([r["body"] for r in records])
        try:
            result = self.behaviour(records)
        except InvokeError:
            raise
        except Exception as exc:
            return FunctionFailed(type(exc).__name__, str(exc))
        return Returned(result)

    def close(self) -> None:
        pass

    def invoked_bodies(self) -> list[str]:
        return [body for call in self.calls for body in call]


class ListDestination:
    """Keeps notices in memory; can be told to fail the next N writes."""

    def __init__(self, fail_times: int = 0) -> None:
        self.notices: list[dict[str, Any]] = []
        self.fail_times = fail_times

    def send(self, notice: dict[str, Any], records: Sequence[Record]) -> None:
        from esm.errors import DestinationError

        if self.fail_times:
            self.fail_times -= 1
            raise DestinationError("destination down")
        self.notices.append(notice)

    def close(self) -> None:
        pass

    def dead_bodies(self) -> list[str]:
        return [r["body"] for n in self.notices for r in n["payload"]["Records"]]


def mapping_config(family: str = "stream", **overrides: Any) -> MappingConfig:
    cls = MemorySource if family == "stream" else MemoryQueueSource
    base = MappingConfig(
        name="test",
        source=ConnectorSpec("memory", cls, MemorySettings()),
        target=ConnectorSpec("python", object, None),
        batch_size=3,
        retry_backoff=RetryBackoff(initial_seconds=1.0, maximum_seconds=8.0, jitter=False),
    )
    return replace(base, **overrides)


class Rig:
    """A reader over a memory broker with a scripted target, stepped by hand."""

    def __init__(self, mapping: MappingConfig, target: Any,
                 destination: ListDestination | None = None, lanes: int = 1,
                 max_in_flight: int = 4, broker: MemoryBroker | None = None,
                 source_factory: Callable[[ConnectorContext], Any] | None = None,
                 pool: Any = None, **protection: Any) -> None:
        # A restart over the same broker keeps its clock (record arrival times stay in order).
        self.clock = broker.clock if broker is not None else FakeClock()  # type: ignore[assignment]
        self.stop = threading.Event()
        self.metrics = Metrics().for_mapping(mapping.name)
        self.status = MappingStatus(mapping.name, "memory", "python")
        family = mapping.source.cls.traits.family
        self.broker = broker or MemoryBroker(family, self.clock, lanes,
                                             visibility_timeout_seconds=30)
        self.target = target
        self.destination = destination
        self.executor = ManualExecutor()
        self.context = ConnectorContext(mapping.name, self.stop, self.clock)
        settings = mapping.source.settings
        settings = replace(settings if isinstance(settings, MemorySettings) else MemorySettings(),
                           lanes=lanes)
        self.source = (source_factory(self.context) if source_factory is not None
                       else mapping.source.cls(settings, self.context, self.broker))
        run_stop = threading.Event()
        store = build_connector(mapping.window_state, self.context) \
            if mapping.window_state else None
        invoker = build_invoker(mapping, self.source, target, self.metrics, self.status,
                                self.clock, store)
        letterer = DeadLetterer(mapping=mapping, source=self.source, destination=destination,
                                function_arn="arn:aws:lambda:local:000000000000:function:test",
                                metrics=self.metrics, status=self.status, clock=self.clock,
                                stop=run_stop, rng=random.Random(7))
        policy = FailurePolicy.for_mapping(mapping, self.source.traits, random.Random(7))
        self.worker = LaneWorker(invoker=invoker, policy=policy, dead_letterer=letterer,
                                 metrics=self.metrics, clock=self.clock, stop=run_stop,
                                 envelope_bytes=self.source.event_overhead_bytes(),
                                 **protection)  # limiter=, breaker=
        self.reader = Reader(
            mapping=mapping, source=self.source,
            matcher=compile_filters(list(mapping.filter_patterns)), worker=self.worker,
            pool=pool or self.executor, max_in_flight=max_in_flight, metrics=self.metrics,
            status=self.status, clock=self.clock, stop=self.stop, drain_seconds=1.0,
            idle_poll_seconds=0.0, min_buffered_records=0,
        )
        self.source.open(self.reader)

    def put(self, *bodies: Any, lane: str | None = None) -> None:
        for body in bodies:
            self.broker.put(body if isinstance(body, str) else json.dumps(body), lane)

    def turn(self, run_workers: bool = True) -> None:
        """One reader step, then (optionally) run the batches it dispatched."""
        self.reader.step()
        if run_workers:
            self.executor.run_all()
        self.reader.in_flight.apply(0)

    def run_until_quiet(self, max_turns: int = 200) -> None:
        for _ in range(max_turns):
            self.turn()
            if self.reader.idle and not self.executor.pending:
                self.turn()
                if self.reader.idle:
                    return
        raise AssertionError("reader did not go idle")

    def committed_bodies(self) -> list[str]:
        ids = self.broker.acked
        return [self._body(i) for i in ids]

    def _body(self, message_id: str) -> str:
        lane, seq = message_id.rsplit(":", 1)
        return self.broker._logs[lane][int(seq)].body
