"""The confirmation progress bar: drawn on a terminal for large publishes, never otherwise."""

from __future__ import annotations

import io

import pytest

from crm_automation import progress


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _confirm_all(stream: io.StringIO, total: int) -> str:
    with progress.confirmations("records confirmed by Kafka", stream=stream) as confirmed:
        for done in range(1, total + 1):
            confirmed(done, total)
    return stream.getvalue()


def test_a_large_publish_on_a_terminal_draws_a_bar_that_ends_at_the_total() -> None:
    drawn = _confirm_all(Terminal(), progress.SHOWN_FROM + 100)
    assert "records confirmed by Kafka" in drawn
    assert f"{progress.SHOWN_FROM + 100}/{progress.SHOWN_FROM + 100}" in drawn


@pytest.mark.parametrize(
    ("stream", "total"),
    [
        pytest.param(Terminal(), progress.SHOWN_FROM - 1, id="small-publish-on-a-terminal"),
        pytest.param(io.StringIO(), progress.SHOWN_FROM + 100, id="large-publish-redirected"),
    ],
)
def test_no_bar_is_drawn_for_a_small_publish_or_when_stderr_is_not_a_terminal(
    stream: io.StringIO, total: int
) -> None:
    assert _confirm_all(stream, total) == ""
