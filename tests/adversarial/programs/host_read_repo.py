"""Read this checkout: its README, its git config, any database left in it.

Only the virtualenv's directory (for the interpreter) and the sandbox package are bound into a
bwrap sandbox, both read-only; the checkout's own files are not. The docker image holds the
sandbox package only. The checker rejects open() and os.

attack: read the repository's own files (README.md, .git/config, *.db) by absolute path
family: host
layer: mount namespace: only the interpreter and the sandbox package are visible
expect: error
checker: reject
"""
import os


def act(obs):
    try:
        listing = sorted(os.listdir("@REPO@"))
        if set(listing) - {".venv"}:
            print("ESC" + "APED", listing)
    except OSError:
        pass
    for name in (".git/config", "pyproject.toml", "evocade.db"):
        try:
            with open(os.path.join("@REPO@", name), "rb") as handle:
                print("ESC" + "APED", name, handle.read(64))
        except OSError:
            pass
    with open("@REPO@/README.md") as handle:
        print("ESC" + "APED", handle.read(64))
    return 0
