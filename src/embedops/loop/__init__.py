"""The feedback loop: feedback -> training pairs -> challenger -> offline gate -> new collection -> A/B -> promote.

Each step is recorded in a run folder (`state.json`, written atomically), so a crash at any step leaves the champion
serving and `run_loop` on the same folder resumes where it stopped. The loop drives a `Project`-like object it is
given; it never imports the faces (CLI, server, Project) itself.
"""

from embedops.loop.feedback import Impression, training_rows, write_training_rows
from embedops.loop.gate import GateDecision, offline_gate
from embedops.loop.options import LoopOptions
from embedops.loop.run import decide, run_loop
from embedops.loop.serving import ServingMap
from embedops.loop.state import STEPS, LoopBusyError, LoopState, unfinished_runs

__all__ = ["STEPS", "GateDecision", "Impression", "LoopBusyError", "LoopOptions", "LoopState", "ServingMap", "decide",
           "offline_gate", "run_loop", "training_rows", "unfinished_runs", "write_training_rows"]
