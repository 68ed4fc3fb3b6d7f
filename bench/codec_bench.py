"""Codec throughput: encode + decode per second of a realistic StageChanged."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from decimal import Decimal

from automation_core.model import Company, Contact, EntityType, Item, StageChanged
from runtime import codec

EVENT = StageChanged(
    event_id="evt-2026-11-26-000001",
    occurred_at=datetime(2026, 11, 26, 10, 0, 0, 123000, tzinfo=UTC),
    entity_type=EntityType.DEAL,
    item_id="471100",
    pipeline_id="sales",
    stage_id="WON",
    previous_stage_id="NEGOTIATION",
    item=Item(
        title="Maintenance contract Müller GmbH 2027",
        responsible_id="u-7",
        amount=Decimal("12000.00"),
        currency="EUR",
        company=Company("c-1", "Müller GmbH"),
        contacts=(
            Contact("p-1", "Anna", "Müller", "anna@example.com", "+49 30 1234"),
            Contact("p-2", "Jonas", "Schmidt", "jonas@example.com", None),
        ),
        begin_date=date(2026, 11, 1),
        close_date=date(2026, 11, 30),
        fields={
            "UF_CONTRACT_NO": "MV-17",
            "UF_REGION": "Berlin",
            "UF_PRODUCTS": ["boiler", "maintenance"],
            "UF_NOTE": None,
        },
    ),
)


def measure(seconds: float = 3.0) -> tuple[float, float, float, int]:
    """(round trips/s, encodes/s, decodes/s, message size in bytes)."""
    data = codec.encode(EVENT)
    assert codec.decode(data) == EVENT
    rates = []
    for step in (
        lambda: codec.decode(codec.encode(EVENT)),
        lambda: codec.encode(EVENT),
        lambda: codec.decode(data),
    ):
        n, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            for _ in range(1000):
                step()
            n += 1000
        rates.append(n / elapsed)
    return rates[0], rates[1], rates[2], len(data)


def main() -> None:
    round_trip, encode, decode, size = measure()
    print(f"StageChanged ({size} bytes, 2 contacts, company, 4 fields), one core:")
    print(f"  encode+decode {round_trip:>9,.0f}/s")
    print(f"  encode        {encode:>9,.0f}/s")
    print(f"  decode        {decode:>9,.0f}/s")


if __name__ == "__main__":
    main()
