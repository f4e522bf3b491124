"""`rnnviz bench`: the performance figures, headless (training, start-up) and of the window."""

from rnnviz.bench.headless import main

__all__ = ["main"]
