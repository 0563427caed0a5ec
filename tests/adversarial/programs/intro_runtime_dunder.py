"""Build the dunder names at run time so that no `__x__` appears in the source.

`"_" * 2 + "class" + "_" * 2` and friends, fed to getattr, walk from a function to its
`__globals__` and `__builtins__`, then `__import__("os")` and fork. A checker that only looked
for dunder identifiers would pass this. Ours rejects any getattr whose name is not a string
literal (computed-attribute), and the runtime guard refuses names starting with "_" anyway.
With the checker off, Python reaches `os`; seccomp refuses the fork.

attack: dunder names computed at run time, getattr chain to __import__('os'), fork
family: introspection
layer: seccomp refuses fork/clone (EPERM)
expect: error
checker: reject
"""


def dunder(word):
    return "".join(["_", "_", word, "_", "_"])


def act(obs):
    namespace = getattr(act, dunder("globals"))
    builtins = namespace[dunder("builtins")]
    importer = builtins[dunder("import")] if isinstance(builtins, dict) else getattr(
        builtins, dunder("import")
    )
    os = importer("os")
    if os.fork() == 0:
        print("ESC" + "APED", "forked")
    return 0
