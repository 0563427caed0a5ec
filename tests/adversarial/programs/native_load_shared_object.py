"""Load native code that was not loaded before: a system library, a .so written to the tmpfs,
an extension module.

Every one needs executable memory (dlopen maps the code PROT_EXEC), which seccomp refuses once
the policy runs; the file cannot even be written (O_CREAT is refused, RLIMIT_FSIZE is 0), and
memfd_create is refused. The checker rejects the imports.

attack: dlopen a new library, a .so dropped in /tmp or a memfd, import numpy after confinement
family: native
layer: seccomp refuses PROT_EXEC mappings, O_CREAT and memfd_create (EPERM)
expect: error
checker: reject
"""
import ctypes
import os

ELF = b"\x7fELF" + b"\x00" * 60


def act(obs):
    errors = []
    try:
        with open("/tmp/evil.so", "wb") as handle:
            handle.write(ELF)
        print("ESC" + "APED", "wrote /tmp/evil.so")
    except OSError as error:
        errors.append(error)
    try:
        fd = os.memfd_create("evil")
        print("ESC" + "APED", "memfd", fd)
    except OSError as error:
        errors.append(error)
    try:
        import numpy  # noqa: F401

        print("ESC" + "APED", "imported numpy")
    except ImportError as error:
        errors.append(error)
    ctypes.CDLL("libutil.so.1")
    print("ESC" + "APED", "loaded libutil", errors)
    return 0
