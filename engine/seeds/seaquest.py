# Starter policy for Seaquest: patrol at one depth and keep firing.
step = 0


def act(obs):
    global step
    step += 1
    player = obs.get("Player")
    if player is not None and player["y"] < 80:
        return 13
    return 11 if (step // 60) % 2 == 0 else 12
