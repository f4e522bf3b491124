"""`rnnviz bench`: the performance figures, headless (training, start-up) and of the window;
with ``--peer``, the whole ``rnnviz train`` process against d2l.ai's own code; with
``--tasks``, the seconds each task (core.tasks) takes to reach its target."""

from __future__ import annotations

import argparse
import sys

from rnnviz.bench.headless import main as _headless_main

__all__ = ["main"]


def main(args: argparse.Namespace) -> int:
    if getattr(args, "peer", False):
        # imported here, not above: `python -m rnnviz.bench.peer` imports this package first,
        # and peer must not be in sys.modules before it runs as __main__
        from rnnviz.bench.peer import main_peer

        return main_peer(args)
    if getattr(args, "tasks", False):
        from rnnviz.bench.tasks import main_tasks

        if getattr(args, "epochs", None) is not None:
            print("error: --epochs only applies with --peer", file=sys.stderr)
            return 2
        return main_tasks(args)
    given = [f for f in ("repeats", "epochs") if getattr(args, f, None) is not None]
    if given:
        flags = " and ".join(f"--{f}" for f in given)
        print(f"error: {flags} only apply with --peer (--repeats: or --tasks)", file=sys.stderr)
        return 2
    return _headless_main(args)
