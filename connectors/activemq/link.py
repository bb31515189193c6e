"""One AMQP 1.0 connection and receiver link to an ActiveMQ queue, driven by its caller.

Why BlockingConnection with our own link handler: proton's blocking receiver settles
deliveries only in the order it handed them out, and esm settles each delivery on its own
(accept, modified, rejected) in whatever order batches finish. The handler below keeps
every delivery object, and the owner (the mapping's reader thread, the only thread that
touches proton here) pumps the connection with `pump()`: proton's reactor is not thread-safe
and does nothing between pumps, so settlements and credit go out on the next pump.

Credit is ours, not proton's: the link is given credit only while `credit` exceeds what is
buffered plus what the broker may still send, so memory is bounded by configuration.

Errors: every proton connection or link failure becomes `SourceUnavailable`; the broker
then redelivers whatever was unsettled (AMQP 1.0: unsettled deliveries of a closed link
return to the queue).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from proton import Delivery, Disposition, Handler, Message, ProtonException, SSLDomain, Timeout
from proton.utils import BlockingConnection

from esm.errors import SourceUnavailable

log = logging.getLogger(__name__)


class _Inbox(Handler):
    """Collects (message, delivery) pairs as they arrive; settles nothing by itself.

    A bare Handler, not proton's MessagingHandler: that one hands every event (flow,
    transport, delivery) to four child handlers, which cost the reader thread about a third
    of its time per message; esm needs only complete deliveries and the link's end."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: deque[tuple[Message, Delivery]] = deque()

    def on_delivery(self, event: Any) -> None:
        delivery = event.delivery
        if delivery.aborted:
            delivery.settle()  # the sender gave it up; the broker keeps the message
        elif delivery.readable and not delivery.partial:
            link = delivery.link
            message = Message()
            message.decode(link.recv(delivery.pending))
            link.advance()
            self.arrived.append((message, delivery))

    def on_link_remote_close(self, event: Any) -> None:
        condition = event.link.remote_condition
        raise SourceUnavailable(f"activemq: the broker closed the receiver: {condition}")


class QueueLink:
    """A connection, a receiver on `queue`, and the deliveries received on it."""

    def __init__(self, url: str, queue: str, *, user: str | None, password: str | None,
                 credit: int, timeout_seconds: float, idle_timeout_seconds: float) -> None:
        self.credit = credit
        self._inbox = _Inbox()
        ssl = SSLDomain(SSLDomain.MODE_CLIENT) if url.startswith("amqps://") else None
        kwargs: dict[str, Any] = {"user": user, "password": password,
                                  "sasl_enabled": True, "allow_insecure_mechs": True}
        if idle_timeout_seconds:
            kwargs["heartbeat"] = idle_timeout_seconds
        try:
            self._conn = BlockingConnection(url, timeout=timeout_seconds, ssl_domain=ssl,
                                            **kwargs)
            self._receiver = self._conn.create_receiver(queue, credit=0, handler=self._inbox)
        except (ProtonException, OSError) as exc:
            raise SourceUnavailable(f"activemq: cannot read queue {queue!r} at {url}: "
                                    f"{exc}") from exc
        self._link = self._receiver.link
        self.top_up()

    def buffered(self) -> int:
        return len(self._inbox.arrived)

    def take(self, limit: int) -> list[tuple[Message, Delivery]]:
        arrived = self._inbox.arrived
        return [arrived.popleft() for _ in range(min(limit, len(arrived)))]

    def top_up(self) -> None:
        """Grant credit up to `credit` minus what is buffered or already promised."""
        want = self.credit - self.buffered() - self._link.credit
        if want > 0 and want * 4 >= self.credit:  # in chunks, not one frame per message
            self._link.flow(want)

    def pump(self, seconds: float, until_message: bool = True) -> None:
        """Process network events for up to `seconds` (at least once), returning early when
        a message is buffered and `until_message`."""
        self.top_up()
        ready = (lambda: bool(self._inbox.arrived)) if until_message else (lambda: False)
        try:
            self._conn.wait(ready, timeout=max(0.0, seconds))
        except Timeout:
            pass
        except (ProtonException, OSError) as exc:
            raise SourceUnavailable(f"activemq: connection lost: {exc}") from exc

    @staticmethod
    def accept(delivery: Delivery) -> None:
        delivery.update(Delivery.ACCEPTED)
        delivery.settle()

    @staticmethod
    def failed(delivery: Delivery) -> None:
        """MODIFIED with delivery-failed: the broker redelivers with delivery-count + 1.
        (proton's blocking `release(delivered=True)` leaves the flag unset, so the count would
        not grow and the message would never reach its redelivery limit.)"""
        delivery.local.failed = True
        delivery.update(Disposition.MODIFIED)
        delivery.settle()

    @staticmethod
    def reject(delivery: Delivery) -> None:
        """REJECTED: ActiveMQ moves the message to its dead-letter queue (ActiveMQ.DLQ)."""
        delivery.update(Delivery.REJECTED)
        delivery.settle()

    def close(self) -> None:
        """Close the connection; unsettled deliveries go back to the queue."""
        try:
            self._conn.close()
        except Exception as exc:  # a dead connection fails to close; nothing is lost
            log.debug("activemq: closing the connection: %s", exc)
