"""Connect to routable addresses (10.255.255.1, 192.0.2.1) with a 30-second timeout.

Both addresses are unreachable by design, so a connect that got as far as sending a SYN would
hang for the whole timeout: failing within max-seconds shows that no packet was attempted.
seccomp refuses socket() at once (through the socket module, or through ctypes where the
socket module cannot be loaded after confinement).

attack: TCP connect to routable addresses (10.255.255.1:80, 192.0.2.1:443)
family: network
layer: seccomp refuses socket (EPERM) at once, no traffic; no route in the namespace behind it
expect: error
checker: reject
max-seconds: 2
"""
import ctypes
import os

try:
    import socket
except ImportError:
    socket = None


def act(obs):
    for address in (("10.255.255.1", 80), ("192.0.2.1", 443)):
        if socket is not None:
            socket.create_connection(address, timeout=30)
        else:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.socket(2, 1, 0) < 0:
                code = ctypes.get_errno()
                raise OSError(code, os.strerror(code))
        print("ESC" + "APED", "connected to", address)
    return 0
