"""Map executable memory to run machine code: anonymous mmap with PROT_EXEC, mprotect to
PROT_EXEC, and the mmap module where it can be loaded.

A policy that could map memory executable could write shellcode and jump to it with ctypes.
seccomp refuses mmap and mprotect with PROT_EXEC once the runner has loaded every extension
module a policy may import (so the mmap module itself may be impossible to import). The checker
rejects the imports. The policy calls libc through ctypes and re-raises the refusal.

attack: anonymous mmap with PROT_EXEC, mprotect(PROT_EXEC) through ctypes/libc
family: native
layer: seccomp refuses PROT_EXEC in mmap/mprotect (EPERM)
expect: error
checker: reject
"""
import ctypes
import os

PROT_RWX, MAP_PRIVATE_ANONYMOUS = 7, 0x22


def act(obs):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    page = libc.valloc(4096)
    if libc.mprotect(ctypes.c_void_p(page), 4096, PROT_RWX) == 0:
        print("ESC" + "APED", "mprotect PROT_EXEC")
    try:
        import mmap

        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        print("ESC" + "APED", "mmap module PROT_EXEC")
    except (ImportError, OSError):
        pass
    address = libc.mmap(None, 4096, PROT_RWX, MAP_PRIVATE_ANONYMOUS, -1, 0)
    if address in (None, ctypes.c_void_p(-1).value):
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    print("ESC" + "APED", "mmap PROT_EXEC at", hex(address))
    return 0
