"""Leave a pickle payload in the output that would create a file on the host if unpickled.

Results cross the sandbox boundary as size-capped JSON, parsed and validated by pydantic on the
host; nothing is ever unpickled. The payload stays an inert string in `output`, and the file it
names never appears.

attack: a result payload that would run code if unpickled (os.system via pickle)
family: forgery
layer: JSON-only results validated on the host (never pickle)
expect: ok
checker: accept
checked: ok
score: noop
"""

PAYLOAD = "cos\nsystem\n(S'touch @HOST_DIR@/unpickled'\ntR."


def act(obs):
    print(PAYLOAD)
    return 0
