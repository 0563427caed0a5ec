"""Turn one evaluation into the few thousand characters of feedback the next prompt carries.

The reference paper pasted the full step-by-step rollout into every prompt (~250k characters for
Pong, docs/DESIGN.md §6). What a model can act on is much smaller: how each episode ended, what
went wrong (the traceback, the checker's diagnostics), and what happened in the few steps before
each point or life was lost. This package says exactly that, event first, under a hard size cap:

- per seed: return, length, status; the error or the checker's findings (`sections`);
- for the worst episodes: rewards and lives lost with their steps, an action histogram
  (`actions`), the few steps before the first losses, one line per step with the action and the
  key object positions (`render`), and plain hints computed from the data (`hints`), e.g. where
  the object nearest the Player was when it got past (`geometry`).

`compose` puts them together and walks down a ladder of detail until the text fits.
The paper-style step-by-step dump lives in `benchmarks/step_by_step.py`, the baseline that
`benchmarks/bench_prompt.py` measures this against.
"""

from engine.feedback.compose import MAX_FEEDBACK_CHARS, compose_feedback

__all__ = ["MAX_FEEDBACK_CHARS", "compose_feedback"]
