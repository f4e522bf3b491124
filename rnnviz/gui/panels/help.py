"""What each panel shows, in two or three sentences and the book's notation (d2l.ai, "Recurrent
Neural Networks"): the text of the "?" in every panel's title bar, by dock name."""

from __future__ import annotations

from rnnviz.gui.panels._gradflow_plots import HELP_TEXT as GRADFLOW_HELP
from rnnviz.gui.panels.hidden_states import HELP_TEXT as HIDDEN_HELP

HELP: dict[str, tuple[str, str]] = {
    "dock_controls": (
        "Controls",
        "Play trains the character-level RNN on minibatches of <i>n</i> sequences of "
        "num_steps characters; Step trains one. The learning rate η and the clipping threshold "
        "θ act on the next step: <b>g ← min(1, θ/‖g‖) g</b>, then every weight W ← W − η g. The "
        "model, φ, the hidden size h and the data start a new run from the same seed.",
    ),
    "dock_curves": (
        "Training curves",
        "Perplexity, <b>exp(−(1/n) Σ<sub>t</sub> log P(x<sub>t</sub> | x<sub>t−1</sub>, …, "
        "x<sub>1</sub>))</b>, on the training data and on held-out text, on a log axis: 1 is "
        "a perfect model, |V| is uniform guessing. Below it, the tokens trained per second.",
    ),
    "dock_gradnorms": (
        "Gradient norms",
        "‖g‖, the norm of the gradient of all parameters, before and after clipping, at every "
        "step, against θ: where ‖g‖ &gt; θ the step was clipped, <b>g ← (θ/‖g‖) g</b>. The "
        "rows below split ‖g‖ by parameter: W<sub>xh</sub>, W<sub>hh</sub>, b<sub>h</sub>, "
        "W<sub>hq</sub>, b<sub>q</sub>.",
    ),
    "dock_probe_text": (
        "Probe text",
        "The model reads the typed string one character x<sub>t</sub> at a time. Each "
        "character is coloured by one hidden unit of <b>H<sub>t</sub></b> after reading it "
        "(or by the surprisal −log<sub>2</sub> P(x<sub>t+1</sub>)), and under it are the most "
        "likely next characters, softmax(O<sub>t</sub>), the true one in orange. The second "
        "slider is training time: drag it, or press [ and ], to see the probe on the model as "
        "it was at a stored snapshot; Live returns to the model training.",
    ),
    "dock_hidden": ("Hidden states", HIDDEN_HELP),
    "dock_softmax": (
        "Softmax",
        "The output layer <b>O<sub>t</sub> = H<sub>t</sub> W<sub>hq</sub> + "
        "b<sub>q</sub></b> turned into probabilities, <b>P(x<sub>t+1</sub> | x<sub>≤t</sub>) "
        "= softmax(O<sub>t</sub>)</b>: the bars are the cursor step's distribution over the "
        "vocabulary (the true next character outlined), the heatmap every step's.",
    ),
    "dock_gradflow": ("Gradient flow", GRADFLOW_HELP),
    "dock_stepview": (
        "Step view",
        "One time step in numbers: <b>H<sub>t</sub> = φ(X<sub>t</sub> W<sub>xh</sub> + "
        "H<sub>t−1</sub> W<sub>hh</sub> + b<sub>h</sub>)</b> term by term, then <b>O<sub>t</sub> "
        "= H<sub>t</sub> W<sub>hq</sub> + b<sub>q</sub></b> and its softmax. The slides' "
        "identity: X<sub>t</sub> W<sub>xh</sub> + H<sub>t−1</sub> W<sub>hh</sub> = "
        "[X<sub>t</sub>, H<sub>t−1</sub>] [W<sub>xh</sub>; W<sub>hh</sub>]. "
        "For an LSTM, PyTorch's gates in its order i, f, g, o (d2l's I<sub>t</sub>, "
        "F<sub>t</sub>, C̃<sub>t</sub>, O<sub>t</sub>), then <b>c<sub>t</sub> = f<sub>t</sub> ⊙ "
        "c<sub>t−1</sub> + i<sub>t</sub> ⊙ g<sub>t</sub></b> with both terms as rows to add up, "
        "and <b>h<sub>t</sub> = o<sub>t</sub> ⊙ tanh(c<sub>t</sub>)</b>. For a GRU, "
        "r<sub>t</sub>, z<sub>t</sub>, <b>n<sub>t</sub> = tanh(x<sub>t</sub>W<sub>in</sub> + "
        "b<sub>in</sub> + r<sub>t</sub> ⊙ (h<sub>t−1</sub>W<sub>hn</sub> + b<sub>hn</sub>))</b> "
        "and <b>h<sub>t</sub> = (1 − z<sub>t</sub>) ⊙ n<sub>t</sub> + z<sub>t</sub> ⊙ "
        "h<sub>t−1</sub></b>. This is PyTorch's GRU, the model that runs: its reset gate acts "
        "after the product with W<sub>hn</sub>, while d2l's candidate uses (R<sub>t</sub> ⊙ "
        "H<sub>t−1</sub>) W<sub>hh</sub>, the gate before it. Gates are coloured on 0…1, tanh "
        "values on ±1, the cell state on a symmetric scale that holds its values. Of stacked "
        "layers (d2l 10.3), the layer chosen beside the step: above the first, its input is "
        "the layer below's h<sub>t</sub><sup>(l−1)</sup> instead of the one-hot x<sub>t</sub>, "
        "and O<sub>t</sub> is always the top layer's h<sub>t</sub> W<sub>hq</sub>. The hidden "
        "states, this view and the gate saturation show one layer: choosing it in one moves "
        "the others. Of a bidirectional model (d2l 10.4), the direction chosen beside the "
        "layer: the backward one reads the text from its end, so its step t reads "
        "h<sub>t+1</sub>, with its own weights; O<sub>t</sub> = [h<sub>t</sub><sup>→</sup> ; "
        "h<sub>t</sub><sup>←</sup>] W<sub>hq</sub> + b<sub>q</sub> reads both, the row above "
        "it.",
    ),
    "dock_film": (
        "Learning film",
        "The probe string as every stored snapshot of training read it: one row per snapshot, "
        "the oldest at the top, one column per character t. The colour is "
        "<b>P(x<sub>t+1</sub> | x<sub>t</sub>, …, x<sub>1</sub>)</b>, the probability that "
        "snapshot gave the character that really follows; down a column you see when the model "
        "learnt it. Click a row: every probe panel shows that model (Live returns).",
    ),
    "dock_generation": (
        "Generation",
        "d2l's <tt>predict</tt>: the model reads the prefix (warm-up), then writes one "
        "character at a time, each fed back as the next input X<sub>t+1</sub>. Greedy takes "
        "the most likely character; sampling draws from <b>softmax(O<sub>t</sub> / T)</b>, "
        "optionally from the top k only. Each character's colour is the probability it was "
        "drawn with. The seed is fixed, so a new text shows the model's change, not the dice; "
        "New sample re-rolls. It follows the timeline.",
    ),
    "dock_saturation": (
        "Gate saturation",
        "One dot per hidden unit for each sigmoid gate of the GRU or LSTM (LSTM i, f, o; GRU "
        "r, z), read on validation text: <b>x = the fraction of steps the gate is "
        "left-saturated (&lt; 0.1)</b>, <b>y = the fraction right-saturated (&gt; 0.9)</b>. "
        "Top left: almost always open; bottom right: almost always shut; the origin: never "
        "saturated; the dashed diagonal x + y = 1: saturated at every step. A forget gate "
        "almost always right-saturated keeps c<sub>t</sub> = f<sub>t</sub> ⊙ "
        "c<sub>t−1</sub> + … over long spans: that unit is an <b>integrator</b>; one almost "
        "always left-saturated forgets at once (for the GRU, the update gate z<sub>t</sub> of "
        "h<sub>t</sub> = (1 − z<sub>t</sub>) ⊙ n<sub>t</sub> + z<sub>t</sub> ⊙ "
        "h<sub>t−1</sub> plays that part). Trails: where each unit was a few models before. "
        "Click a dot to select its unit in every panel. Of stacked layers, one layer's gates, "
        "chosen beside the readout; of a bidirectional model, one direction's. After "
        "Karpathy, Johnson &amp; Fei-Fei, <i>Visualizing and Understanding Recurrent "
        "Networks</i> (2015), fig. 3.",
    ),
    "dock_unrolled": (
        "Unrolled network",
        "The RNN unrolled over the probe string, as d2l's figure of the character model: each "
        "column is one step, X<sub>t</sub> → H<sub>t</sub> → O<sub>t</sub>, with "
        "H<sub>t−1</sub> → H<sub>t</sub> carrying what was read before, and the loss "
        "<b>ℓ<sub>t</sub> = −log P(target)</b>. The MLP row cuts the recurrence "
        "(H<sub>t−1</sub> = 0): <b>H = φ(X W<sub>xh</sub> + b<sub>h</sub>)</b>.",
    ),
}
