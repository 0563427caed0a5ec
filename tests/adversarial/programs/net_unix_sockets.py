"""Talk to the Docker engine's unix socket and to abstract unix sockets on the host.

The engine's socket (@DOCKER_SOCKET@) would be root on the host. It is not mounted into either
sandbox, abstract unix sockets belong to the network namespace, and seccomp refuses socket()
in the first place (through the socket module, or through ctypes where that cannot be loaded).

attack: connect to the Docker engine's unix socket and to abstract unix sockets
family: network
layer: seccomp refuses socket (EPERM); the socket file is not mounted; own network namespace
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
    for address in ("@DOCKER_SOCKET@", "\0/containerd-shim", "\0evocade"):
        if socket is not None:
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(address)
            client.sendall(b"GET /containers/json HTTP/1.0\r\n\r\n")
            print("ESC" + "APED", client.recv(200))
        else:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.socket(1, 1, 0) < 0:  # AF_UNIX, SOCK_STREAM
                code = ctypes.get_errno()
                raise OSError(code, os.strerror(code))
            print("ESC" + "APED", "made a unix socket")
    return 0
