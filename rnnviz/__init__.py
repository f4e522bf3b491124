"""rnnviz: train a character-level RNN live and watch its internals."""

__version__ = "0.1.0"
