"""Score a point's worth of NOOPs, then raise: a partial return that must not read as a score.

Round two's `evaluate` printed the mean of such episodes as if they were scores. The episode
ends `error` with the return it had earned so far (docs/DESIGN.md §3); what the CLI shows is
tested with the CLI. The checker has nothing to object to.

attack: play, then raise before the end, so that a partial return looks like a result
family: forgery
layer: the harness's status (error, partial return kept as such)
expect: error
checker: accept
checked: error
"""
steps = 0


def act(obs):
    global steps
    steps += 1
    if steps == 25:
        raise RuntimeError("quitting while ahead")
    return 0
