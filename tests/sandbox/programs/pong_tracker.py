"""Follow the ball: move the paddle's centre towards the ball's centre."""


def act(obs):
    player = obs.get("Player")
    ball = obs.get("Ball")
    if player is None or ball is None:
        return 0
    diff = (ball["y"] + ball["h"] / 2) - (player["y"] + player["h"] / 2)
    if diff < -1:
        return 2  # RIGHT: up
    if diff > 1:
        return 3  # LEFT: down
    return 0
