"""What the unrolled network's nodes say: the text in each box and the numbers on hover.

A module of helpers, not a panel: ``_unrolled_canvas`` imports it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from rnnviz.gui import theme
from rnnviz.gui.panels._probe_common import quoted

if TYPE_CHECKING:
    from rnnviz.core.probe import ProbeResult


def node_lines(r: ProbeResult | None, row: str, t: int) -> tuple[str, ...]:
    """What the node ``row`` of step ``t`` says in its box (the values of the probe)."""
    if r is None:
        return ()
    tokens = r.vocab_tokens
    if row == "input":
        return (theme.display_char(r.text[t]), f"#{int(r.tokens[t])}")
    if row == "output":
        return (
            theme.display_char(tokens[int(r.topk_ids[t, 0])]),
            f"{float(r.topk_probs[t, 0]):.2f}",
        )
    if row == "mlp":
        mlp = r.no_recurrence
        return (
            theme.display_char(tokens[int(mlp.top_ids[t])]),
            f"{float(mlp.top_probs[t]):.2f}",
        )
    if row == "target":
        if t + 1 >= len(r.text):
            return ("—", "no next")
        return (theme.display_char(r.text[t + 1]), f"ℓ {loss_text(r.step_loss[t])}")
    return ()


def node_tooltip(r: ProbeResult | None, row: str, t: int, unit: int) -> str:
    """The numbers of one node, as the hover shows them."""
    if r is None:
        return ""
    tokens, char = r.vocab_tokens, quoted(r.text[t])
    if row == "input":
        token = int(r.tokens[t])
        unknown = " (not in the vocabulary: read as <unk>)" if t in r.unknown else ""
        return f"X_{t}: the one-hot vector of {char}, index {token} of {len(tokens)}{unknown}"
    if row in ("hidden", "cell"):
        values = r.hidden[t] if row == "hidden" else r.cell[t]  # type: ignore[index]
        name = "H" if row == "hidden" else "C"
        norm = float(np.linalg.norm(values))
        text = (
            f"{name}_{t} after reading {char}: {len(values)} units, "
            f"min {theme.plain_number(float(values.min()))}, "
            f"max {theme.plain_number(float(values.max()))}, ‖{name}_{t}‖ = "
            f"{theme.plain_number(norm)}"
        )
        if 0 <= unit < len(values):
            text += f"; unit {unit} = {theme.plain_number(float(values[unit]))}"
        return text
    if row == "output":
        top = ", ".join(
            f"{quoted(tokens[int(i)])} {float(p):.2f}"
            for i, p in zip(r.topk_ids[t], r.topk_probs[t], strict=True)
        )
        return f"softmax(O_{t}), the most likely next characters: {top}"
    if row == "mlp":
        mlp = r.no_recurrence
        top = f"{quoted(tokens[int(mlp.top_ids[t])])} {float(mlp.top_probs[t]):.2f}"
        text = f"the MLP (Hₜ₋₁ = 0: {char} alone) predicts {top}"
        if t + 1 < len(r.text):
            saved = float(mlp.step_loss[t] - r.step_loss[t])
            text += (
                f"; loss {loss_text(mlp.step_loss[t])} against the RNN's "
                f"{loss_text(r.step_loss[t])}: the hidden state "
                f"{'saved' if saved >= 0 else 'cost'} {abs(saved):.2f} nats here"
            )
        return text
    if t + 1 >= len(r.text):
        return f"{char} is the last character: nothing follows it, so there is no loss"
    target = r.text[t + 1]
    loss = float(r.step_loss[t])
    p = math.exp(-loss) if math.isfinite(loss) else 0.0
    return (
        f"target {quoted(target)}: p = {p:.3f}, loss −ln p = {loss_text(loss)} nats "
        f"({loss_text(loss / math.log(2))} bits)"
    )


def loss_text(loss: float) -> str:
    return theme.fixed_or_plain(float(loss), 2) if math.isfinite(loss) else "∞"
