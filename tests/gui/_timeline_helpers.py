"""What the timeline and session tests share: a window trained in rounds (one stored snapshot
each), and whether the probe shown is the one of a given step's model."""

from __future__ import annotations

ENGINE_WAIT_MS = 30_000  # as conftest: a spawned engine imports torch first


def train_in_steps(qtbot, window, rounds: int, steps: int = 3) -> None:
    """Several Step commands: each ends with a snapshot, so the timeline has ``rounds`` more."""
    for _ in range(rounds):
        target = window.app_state.main.step + steps
        window.controller.step(steps)
        qtbot.waitUntil(
            lambda t=target: (
                window.app_state.snapshot is not None and window.app_state.snapshot.step == t
            ),
            timeout=ENGINE_WAIT_MS,
        )


def shown_on(window, step: int) -> bool:
    """The probe panels show the probe of the probe text on the model of ``step``."""
    shown = window.probes.current
    return (
        shown is not None
        and shown.snapshot is not None
        and shown.snapshot.step == step
        and shown.result is not None
        and shown.result.text == window.app_state.probe_text
    )
