# Starter policy for Freeway: always walk up, ignoring the cars.
def act(obs):
    return 1
