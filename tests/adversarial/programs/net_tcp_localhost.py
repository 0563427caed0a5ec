"""Connect over TCP to a listener on the host's 127.0.0.1.

The test listens on the host's loopback and fails if anything connects. seccomp refuses
socket() (EPERM) before any packet could be made; behind it, the sandbox's network namespace
(bwrap --unshare-net, docker --network none) has a loopback of its own where nothing listens.
Where the socket module cannot even be imported (its C part would need new executable memory),
the policy makes the system calls through ctypes instead.

attack: TCP connect to a listener on the host's 127.0.0.1
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


def raw_connect(host, port):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.socket(2, 1, 0)  # AF_INET, SOCK_STREAM
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    ip = bytes(int(part) for part in host.split("."))
    address = struct.pack("=H", 2) + struct.pack("!H", port) + ip + bytes(8)  # sockaddr_in
    if libc.connect(fd, address, len(address)) == 0:
        print("ESC" + "APED", "connected")


def act(obs):
    port = int("@TCP_PORT@")
    if socket is None:
        raw_connect("127.0.0.1", port)
    else:
        connection = socket.create_connection(("127.0.0.1", port), timeout=30)
        connection.sendall(b"ESC" + b"APED")
    return 0
