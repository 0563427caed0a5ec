"""Read the evocade database on the host by its absolute path.

The test puts a real evocade SQLite database (made by storage.Store) in a world-readable
directory on the host. The sandbox's file system holds only the Python installation and the
sandbox package (bwrap binds nothing else; the docker image holds nothing of the host), so the
path does not exist inside. The checker rejects open().

attack: read the evocade SQLite database by absolute path (also via /proc/self/root)
family: host
layer: mount namespace: the host's files are not there (FileNotFoundError)
expect: error
checker: reject
"""


def act(obs):
    for path in ("/proc/self/root@DB_PATH@", "/proc/1/root@DB_PATH@"):
        try:
            with open(path, "rb") as handle:
                print("ESC" + "APED", handle.read(64))
        except OSError:
            pass
    with open("@DB_PATH@", "rb") as handle:
        print("ESC" + "APED", handle.read(64))
    return 0
