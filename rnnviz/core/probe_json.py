"""A probe result as plain JSON: what ``rnnviz probe --json`` prints and the window exports.

One object per probe: the text, the vocabulary, every character's id, the positions read as
``<unk>``, the hidden states (and the LSTM's cells), the softmax rows, the top-k guesses as
``[character, probability]`` pairs, the per-step loss and surprisal (``null`` where there is no
next character), and the gradient flow. Everything is a list of plain numbers, so any JSON
reader takes it; nothing is an array type of ours.

A GRU or LSTM adds ``"gates"``: every gate of ``core.gates`` (LSTM i, f, g, o and the cell c;
GRU r, z, n) under its ``gate_key``, e.g. ``"l0.forward.f"``, each as ``{"description": ...,
"levels": [low, high], "values": T x H}``. The levels are the fixed colour levels of a heatmap
((0, 1) for a sigmoid gate, (-1, 1) for tanh, (-m, m) for the cell). The top layer's h is not
repeated there: it is ``"hidden"``; of stacked layers, each layer below adds its own h
(``"l0.forward.h"``, ...) and its gates, so ``"cell"`` is the top layer's c.

A bidirectional model adds ``"bidirectional": true``; ``"hidden"`` (and ``"cell"``) is then
the top layer's forward direction, ``"hidden_reverse"`` (``"cell_reverse"``) its reverse one
(row t: its state at character t), and ``"gates"`` has every layer and direction, e.g.
``"l0.reverse.f"``. Its gradient flow is not causal: G[t, k] for every k. A one-direction
result has none of these keys.

A stacked plain RNN adds ``"layer_hidden"``: every layer's H_t, bottom first, T x H each
(the last one is ``"hidden"``).

The gradient flow is T x T numbers (95 MB of JSON at 4,096 characters), so it is written for
texts of at most :data:`JSON_GRAD_FLOW_MAX_CHARS` characters; past that ``"grad_flow"`` is
``null`` and ``"grad_flow_omitted"`` says why. The CLI and the GUI share this rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # this module needs no torch: a result is plain arrays
    from rnnviz.core.probe import ProbeResult

JSON_GRAD_FLOW_MAX_CHARS = 512

# (T, H) arrays a probe's JSON holds beside "hidden": the LSTM's "cell" and its gates i, f, g, o
# and c; the GRU's gates r, z, n
_STATE_ARRAYS = {"lstm": 6, "gru": 3}


def state_arrays(kind: str, layers: int = 1, directions: int = 1) -> int:
    """How many (T, H) arrays the JSON of a probe of a ``kind`` model holds: "hidden", and
    the cell and the gates of an LSTM or a GRU, every layer's and direction's (what a size
    check counts per character)."""
    gated = _STATE_ARRAYS.get(kind, 0)
    if not gated:  # a stacked plain RNN: "layer_hidden" beside "hidden"
        return directions * (1 + (layers if layers > 1 else 0))
    return directions * (1 + gated * layers + layers - 1)


def grad_flow_omitted(chars: int) -> str | None:
    """Why a probe of ``chars`` characters is written without its gradient flow (None: it is
    written with it)."""
    if chars <= JSON_GRAD_FLOW_MAX_CHARS:
        return None
    return (
        f"the gradient flow (T x T numbers) is written for texts of at most "
        f"{JSON_GRAD_FLOW_MAX_CHARS:,} characters; this one has {chars:,}: "
        "probe a shorter text to get it"
    )


def _none_if_nan(values: Iterable[Any]) -> list[float | None]:
    # JSON has no NaN: the last character's loss (there is no next one) becomes null
    return [None if not math.isfinite(float(v)) else float(v) for v in values]


def probe_json(result: ProbeResult) -> dict[str, Any]:
    """``result`` as a JSON-ready dict (see the module doc); ``json.dumps`` it as it is."""
    tokens = result.vocab_tokens
    omitted = grad_flow_omitted(len(result.text))
    flow = None if omitted or result.grad_flow is None else result.grad_flow.tolist()
    out: dict[str, Any] = {
        "text": result.text,
        "vocab": list(tokens),
        "tokens": result.tokens.tolist(),
        "unknown": list(result.unknown),
        "hidden": result.hidden.tolist(),
        "probs": result.probs.tolist(),
        "topk": [
            [[tokens[int(i)], float(p)] for i, p in zip(ids, ps, strict=True)]
            for ids, ps in zip(result.topk_ids, result.topk_probs, strict=True)
        ],
        "step_loss": _none_if_nan(result.step_loss),
        "surprisal_bits": _none_if_nan(result.surprisal_bits),
        "grad_flow": flow,
    }
    if omitted:
        out["grad_flow_omitted"] = omitted
    if result.cell is not None:
        out["cell"] = result.cell.tolist()
    if result.hidden_reverse is not None:
        out["bidirectional"] = True
        out["hidden_reverse"] = result.hidden_reverse.tolist()
        if result.cell_reverse is not None:
            out["cell_reverse"] = result.cell_reverse.tolist()
    if result.gates is not None:
        out["gates"] = _gates_json(result)
    if result.layer_hidden is not None:
        out["layer_hidden"] = [h.tolist() for h in result.layer_hidden]
    return out


def _gates_json(result: ProbeResult) -> dict[str, dict[str, Any]]:
    assert result.gates is not None
    from rnnviz.core.gates import gate_key  # imports torch, which made any result with gates

    out: dict[str, dict[str, Any]] = {}
    top = result.gates.num_layers - 1
    for trace in result.gates.traces:
        for name, values in trace.values.items():
            # "hidden" (and "hidden_reverse") is the top layer's h
            if name == "h" and trace.layer == top:
                continue
            low, high = trace.levels[name]
            out[gate_key(trace.layer, trace.direction, name)] = {
                "description": trace.descriptions[name],
                "levels": [float(low), float(high)],
                "values": values.tolist(),
            }
    return out
