"""Items created by automation enter their first stage: the StageChanged that says so.

The Postgres sink publishes it once the item is stored (through its outbox); `rules
test` follows it into the created item's own rules.
"""

from __future__ import annotations

from automation_core.model import (
    Action,
    CopyDeal,
    CreateLead,
    EntityType,
    Item,
    StageChanged,
)


def announcement(action: Action) -> StageChanged | None:
    """The event announcing the deal or lead an action creates (None for other actions).

    Its event id derives from the new item's id, so a re-sent announcement is a duplicate
    the engine recognises; `copy_depth` carries the item's generation (deals and leads
    alike) so the engine's chain limit holds.
    """
    at = action.due_at or action.occurred_at
    p = action.payload
    if isinstance(p, CopyDeal):
        return StageChanged(
            event_id=f"created-{p.deal_id}",
            occurred_at=at,
            entity_type=EntityType.DEAL,
            item_id=p.deal_id,
            pipeline_id=p.pipeline_id,
            stage_id=p.stage_id,
            item=p.item,
            created_by_automation=True,
            copy_depth=p.copy_depth,
            source_item_key=p.source_item_key,
        )
    if isinstance(p, CreateLead) and p.pipeline_id and p.stage_id:
        return StageChanged(
            event_id=f"created-{p.lead_id}",
            occurred_at=at,
            entity_type=EntityType.LEAD,
            item_id=p.lead_id,
            pipeline_id=p.pipeline_id,
            stage_id=p.stage_id,
            item=Item(
                title=p.title,
                responsible_id=p.responsible_id,
                company=p.company,
                contacts=p.contacts,
            ),
            created_by_automation=True,
            copy_depth=p.copy_depth,
            source_item_key=action.item_key,
        )
    return None
