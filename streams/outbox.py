"""Everything the engine produces, confirmed before the consumed offsets may be committed."""

from __future__ import annotations

import asyncio
import logging

from confluent_kafka import KafkaError, Message, Producer

from runtime import kafka_clients
from runtime.kafka_clients import Outgoing

logger = logging.getLogger(__name__)

_MAX_BACKOFF = 10.0
_FLUSH_SECONDS = 5.0
"""How long one flush waits before the engine logs that the batch is still unconfirmed."""


class ConfirmingProducer:
    """A confluent-kafka producer used from the Faust agent: librdkafka batches and
    compresses in C, where Faust's own send builds each record in Python on the agent's
    thread.

    Faust does not know about these messages, so each batch is confirmed with `confirm`
    before the agent moves on (and Faust acks the batch's events). A failed delivery is
    produced again: ids are deterministic, so a re-send creates nothing twice.
    """

    def __init__(self, producer: Producer) -> None:
        self._producer = producer
        self._failed: list[tuple[Outgoing, KafkaError]] = []
        # The agent confirms its batch while Faust's commit may confirm the changelog
        # (faust_compat.confirm_before_commit): one round at a time, so a failed record is
        # produced again and confirmed before either caller returns.
        self._confirming = asyncio.Lock()

    def send(self, out: Outgoing) -> None:
        self._produce(out)

    def _produce(self, out: Outgoing) -> None:
        def on_delivery(error: KafkaError | None, _msg: Message) -> None:
            if error is not None:
                self._failed.append((out, error))

        kafka_clients.produce(self._producer, out, on_delivery)

    async def confirm(self) -> None:
        """Wait until every message sent before this call is acknowledged."""
        async with self._confirming:
            await self._confirm()

    async def _confirm(self) -> None:
        backoff = 0.1
        waited = 0.0
        loop = asyncio.get_running_loop()
        while True:
            remaining = await loop.run_in_executor(None, self._producer.flush, _FLUSH_SECONDS)
            if remaining == 0 and not self._failed:
                return
            if remaining:
                # The agent, and with it every partition of this engine, waits here.
                waited += _FLUSH_SECONDS
                logger.warning("delivery unconfirmed messages=%d waited_s=%.0f", remaining, waited)
            failed, self._failed = self._failed, []
            if failed:
                # One line per round, not per message: a refusal repeats for every record.
                _out, error = failed[0]
                topics = sorted({out.topic for out, _error in failed})
                logger.warning(
                    "delivery failed messages=%d topics=%s error=%s; producing again",
                    len(failed),
                    ",".join(topics),
                    error.name(),
                )
            for out, _error in failed:
                self._produce(out)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)

    def close(self) -> None:
        self._producer.flush(10.0)
