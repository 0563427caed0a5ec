"""Send UDP datagrams to a socket on the host's 127.0.0.1.

The test's UDP socket on the host's loopback must receive nothing. seccomp refuses socket()
(EPERM); the network namespace is the second wall. Without the socket module (its C part
cannot be loaded after confinement) the policy uses the system calls through ctypes.

attack: UDP datagrams to the host's 127.0.0.1
family: network
layer: seccomp refuses socket (EPERM); own network namespace behind it
expect: error
checker: reject
max-seconds: 2
"""
import ctypes
import os
import struct

try:
    import socket
except ImportError:
    socket = None


def act(obs):
    port = int("@UDP_PORT@")
    if socket is not None:
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(10):
            sender.sendto(b"ESC" + b"APED", ("127.0.0.1", port))
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.socket(2, 2, 0)  # AF_INET, SOCK_DGRAM
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    address = struct.pack("=H", 2) + struct.pack("!H", port) + bytes([127, 0, 0, 1]) + bytes(8)
    libc.sendto(fd, b"ESC" + b"APED", 7, 0, address, len(address))
    return 0
