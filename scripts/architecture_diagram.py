"""Draws docs/img/architecture.svg: the processes, the topics between them, and the stores.

    .venv/bin/python scripts/architecture_diagram.py [--out FILE]

`make diagrams` runs it. The topic names come from runtime/topics.py; the figure is a table
of boxes and arrows below, drawn the same way every time (same bytes for the same table),
so tests/unit/test_diagrams.py can tell when the committed SVG is out of date.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from runtime import topics  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "docs" / "img" / "architecture.svg"

# Fill and edge colour per kind of box; the key in the corner names them.
COLOURS = {
    "process": ("#dbe9f7", "#2f6ca3"),
    "topic": ("#fcebd2", "#b8741a"),
    "store": ("#e3e3e3", "#555555"),
    "outside": ("#ffffff", "#555555"),
}


@dataclass(frozen=True)
class Box:
    name: str
    kind: str  # a key of COLOURS
    centre: tuple[float, float]
    size: tuple[float, float]  # width, height
    text: str


@dataclass(frozen=True)
class Arrow:
    source: str
    target: str
    label: str = ""
    bend: float = 0.0  # arc3 radius: 0 is straight
    dashed: bool = False
    start: tuple[float, float] | None = None  # aimed from here instead of the source's centre
    end: tuple[float, float] | None = None  # aimed at here instead of the target's centre
    label_at: tuple[float, float] | None = None  # instead of halfway


BOXES = [
    Box(
        "supervisor",
        "process",
        (11.4, 10.6),
        (12.6, 0.8),
        "crm-automation run (supervisor): starts every process below as a child process,\n"
        "restarts one that stalled, stops all when one exits",
    ),
    Box(
        "producers",
        "outside",
        (1.5, 8.2),
        (2.4, 0.8),
        "CRM producers",
    ),
    Box(
        "cli",
        "outside",
        (1.6, 4.9),
        (2.8, 2.3),
        "CLI: crm-automation\n"
        "events produce\n"
        "rules apply | delete\n"
        "dlq list | replay\n"
        "timers list | stats (Postgres)",
    ),
    Box(
        "stage_changes",
        "topic",
        (5.4, 8.2),
        (2.8, 0.7),
        topics.STAGE_CHANGES,
    ),
    Box(
        "rules",
        "topic",
        (5.4, 6.3),
        (2.8, 0.9),
        f"{topics.RULES}\n(compacted)",
    ),
    Box(
        "engine",
        "process",
        (9.2, 7.25),
        (3.0, 2.3),
        "engine (Faust agent)\nrules table (GlobalTable)\nitem state table\npure core: evaluate()",
    ),
    Box(
        "timers",
        "topic",
        (9.2, 4.35),
        (2.8, 0.7),
        topics.TIMERS,
    ),
    Box(
        "scheduler",
        "process",
        (9.2, 2.5),
        (3.0, 1.3),
        "scheduler\ndurable timers, fire loop\n(FOR UPDATE SKIP LOCKED)",
    ),
    Box(
        "dlq",
        "topic",
        (5.4, 2.5),
        (3.0, 1.3),
        f"{topics.DLQ}\nbad input, with reasons:\nwritten by every process",
    ),
    Box(
        "actions",
        "topic",
        (13.2, 7.25),
        (2.8, 0.7),
        topics.ACTIONS,
    ),
    Box(
        "executions",
        "topic",
        (13.4, 2.6),
        (3.4, 1.3),
        f"{topics.EXECUTIONS}\n(execution log; calendar and\nwebhook sinks add theirs)",
    ),
    Box(
        "sink_webhook",
        "process",
        (17.0, 8.7),
        (2.8, 0.9),
        "sink webhook\n(only with allowed hosts)",
    ),
    Box(
        "sink_calendar",
        "process",
        (17.0, 6.95),
        (2.8, 1.2),
        "sink calendar\n(VEVENTs, room bookings;\nits event log in Postgres)",
    ),
    Box(
        "sink_postgres",
        "process",
        (17.0, 4.35),
        (2.8, 1.3),
        "sink postgres\n(leads, deals, activities,\nexecution log; outbox)",
    ),
    Box(
        "receivers",
        "outside",
        (21.3, 8.7),
        (2.4, 0.9),
        "webhook receivers\n(HTTPS)",
    ),
    Box(
        "caldav",
        "store",
        (21.3, 6.95),
        (2.4, 0.9),
        "Radicale / CalDAV\ncalendars",
    ),
    Box(
        "postgres",
        "store",
        (14.0, 0.95),
        (12.4, 0.9),
        "PostgreSQL: timers, leads, deals, activities, execution log,\n"
        "calendar event log, consumer offsets",
    ),
]

ARROWS = [
    Arrow("producers", "stage_changes", "StageChanged"),
    Arrow("cli", "stage_changes", "events produce", bend=-0.15),
    Arrow("cli", "rules", "rules apply"),
    Arrow("cli", "timers", "CANCEL_RULE", bend=0.12),
    Arrow("dlq", "cli", "list, replay", dashed=True),
    Arrow("stage_changes", "engine"),
    Arrow("rules", "engine", "rules table"),
    Arrow("engine", "actions", "immediate"),
    Arrow("engine", "timers", "SCHEDULE, CANCEL"),
    Arrow("engine", "executions"),
    Arrow("timers", "scheduler"),
    Arrow("scheduler", "postgres", "timers", end=(9.2, 0.95)),
    Arrow("scheduler", "actions", "fired", label_at=(12.15, 6.0)),
    Arrow("scheduler", "executions"),
    Arrow("actions", "sink_webhook"),
    Arrow("actions", "sink_calendar"),
    Arrow("actions", "sink_postgres"),
    Arrow("executions", "sink_postgres"),
    Arrow("sink_webhook", "receivers", "POST, signed", label_at=(19.5, 8.95)),
    Arrow("sink_calendar", "caldav", "PUT", label_at=(19.5, 7.2)),
    Arrow("sink_postgres", "postgres", "one transaction per batch", end=(17.0, 0.95)),
]

# The outbox's way back: the copied deals re-enter as events. Drawn around the right of
# the sinks and over the engine, where no other arrow runs.
OUTBOX = [(18.4, 4.35), (18.75, 4.35), (18.75, 9.65), (5.4, 9.65), (5.4, 8.55)]
OUTBOX_LABEL = (12.0, 9.65, f"copied deals, back to {topics.STAGE_CHANGES} (outbox)")


_LABEL_BOX = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"}


def draw() -> Figure:
    """The whole diagram as a matplotlib figure (no pyplot: no global state)."""
    fig = Figure(figsize=(15.4, 7.6))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0.0, 22.8)
    ax.set_ylim(0.2, 11.2)
    ax.set_axis_off()
    patches = {}
    for box in BOXES:
        face, edge = COLOURS[box.kind]
        (x, y), (width, height) = box.centre, box.size
        patch = FancyBboxPatch(
            (x - width / 2, y - height / 2),
            width,
            height,
            boxstyle="round,pad=0.02,rounding_size=0.15",
            facecolor=face,
            edgecolor=edge,
            linewidth=1.2,
            gid=f"box-{box.name}",
        )
        ax.add_patch(patch)
        patches[box.name] = patch
        ax.text(
            x,
            y,
            box.text,
            ha="center",
            va="center",
            fontsize=8.5,
            family="monospace" if box.kind == "topic" else "sans-serif",
            linespacing=1.3,
        )
    for arrow in ARROWS:
        source, target = patches[arrow.source], patches[arrow.target]
        ax.annotate(
            "",
            xy=arrow.end or _centre(target),
            xytext=arrow.start or _centre(source),
            arrowprops={
                "arrowstyle": "-|>",
                "color": "#333333",
                "linewidth": 1.0,
                "linestyle": "--" if arrow.dashed else "-",
                "patchA": source,
                "patchB": target,
                "shrinkA": 2.0,
                "shrinkB": 2.0,
                "connectionstyle": f"arc3,rad={arrow.bend}",
            },
            gid=f"arrow-{arrow.source}-{arrow.target}",
        )
        if arrow.label:
            x, y = arrow.label_at or _label_at(
                arrow.start or _centre(source), arrow.end or _centre(target), arrow.bend
            )
            ax.text(
                x,
                y,
                arrow.label,
                ha="center",
                va="center",
                fontsize=7.5,
                style="italic",
                bbox=_LABEL_BOX,
            )
    xs, ys = zip(*OUTBOX[:-1], strict=True)
    ax.plot(xs, ys, color="#333333", linewidth=1.0, linestyle="--", gid="arrow-outbox")
    ax.annotate(
        "",
        xy=OUTBOX[-1],
        xytext=OUTBOX[-2],
        arrowprops={"arrowstyle": "-|>", "color": "#333333", "linewidth": 1.0, "shrinkA": 0},
    )
    x, y, text = OUTBOX_LABEL
    ax.text(x, y, text, ha="center", va="center", fontsize=7.5, style="italic", bbox=_LABEL_BOX)
    _key(ax)
    return fig


def _centre(patch: FancyBboxPatch) -> tuple[float, float]:
    return (patch.get_x() + patch.get_width() / 2, patch.get_y() + patch.get_height() / 2)


def _label_at(
    start: tuple[float, float], end: tuple[float, float], bend: float
) -> tuple[float, float]:
    """Halfway along the arrow: the chord's midpoint, moved off it as far as arc3 bends."""
    (x0, y0), (x1, y1) = start, end
    # arc3's control point sits rad x the chord off the midpoint; the curve passes halfway.
    return (x0 + x1) / 2 + bend * (y1 - y0) / 2, (y0 + y1) / 2 - bend * (x1 - x0) / 2


def _key(ax: matplotlib.axes.Axes) -> None:
    x, y = 0.4, 10.9
    for kind, label in (
        ("process", "process"),
        ("topic", "Kafka topic"),
        ("store", "store"),
        ("outside", "outside the engine"),
    ):
        face, edge = COLOURS[kind]
        ax.add_patch(
            FancyBboxPatch(
                (x, y - 0.13),
                0.4,
                0.26,
                boxstyle="round,pad=0.02",
                facecolor=face,
                edgecolor=edge,
            )
        )
        ax.text(x + 0.55, y, label, va="center", fontsize=7.5)
        y -= 0.38


def render(out: Path) -> Path:
    """Write the diagram as SVG: fixed ids, no date, text kept as text."""
    with matplotlib.rc_context(
        {"svg.hashsalt": "crm-automation-architecture", "svg.fonttype": "none"}
    ):
        out.parent.mkdir(parents=True, exist_ok=True)
        # Creator without matplotlib's version: a release that draws the same picture
        # leaves the file as it is.
        metadata = {"Date": None, "Creator": "scripts/architecture_diagram.py (make diagrams)"}
        draw().savefig(out, format="svg", metadata=metadata)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    print(f"drew {render(parser.parse_args().out)}")


if __name__ == "__main__":
    main()
