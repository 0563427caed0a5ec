# Starter policy for Q*bert: hop down-right and down-left in turn.
step = 0


def act(obs):
    global step
    step += 1
    if step % 20:
        return 0
    return 3 if (step // 20) % 2 else 5
