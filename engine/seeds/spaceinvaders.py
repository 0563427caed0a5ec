# Starter policy for Space Invaders: shoot whenever possible, move towards the nearest alien.
def act(obs):
    player = obs.get("Player")
    aliens = obs["Alien"]
    if player is None or not aliens:
        return 1
    nearest = min(aliens, key=lambda alien: abs(alien["x"] - player["x"]))
    if nearest["x"] > player["x"] + 4:
        return 4
    if nearest["x"] < player["x"] - 4:
        return 5
    return 1
