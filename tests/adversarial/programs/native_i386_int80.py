"""Make a system call through the i386 ABI: jump to an `int 0x80` instruction already mapped
in the process.

A 64-bit process may still enter the kernel with `int 0x80`, which takes the 32-bit table
(where the numbers mean other calls, and a filter written for x86-64 numbers would match the
wrong rules). New machine code is out of reach (no executable memory), but the two bytes
`cd 80` occur somewhere in the interpreter's or libc's code: the policy finds them through
/proc/self/maps and calls that address with ctypes. The seccomp filter sees the i386 audit
architecture, which it has no rules for, and kills the process (SIGSYS): `crashed`, whatever
eax held. If no such bytes are mapped the policy raises (`error`), which the suite reports as
a mismatch. The checker rejects ctypes.

attack: a syscall through the i386 ABI (int 0x80 found in mapped code, called via ctypes)
family: native
layer: seccomp: any other architecture kills the process (SIGSYS)
expect: crashed
checker: reject
"""
import ctypes


def find_int80():
    for line in open("/proc/self/maps"):
        fields = line.split()
        if len(fields) < 6 or "x" not in fields[1] or not fields[5].startswith("/"):
            continue
        start, end = (int(part, 16) for part in fields[0].split("-"))
        code = ctypes.string_at(start, end - start)
        at = code.find(b"\xcd\x80")
        if at >= 0:
            return start + at
    return None


def act(obs):
    address = find_int80()
    if address is None:
        raise RuntimeError("no int 0x80 in mapped code")
    result = ctypes.CFUNCTYPE(ctypes.c_long)(address)()
    print("ESC" + "APED", "int 0x80 returned", result)
    return 0
