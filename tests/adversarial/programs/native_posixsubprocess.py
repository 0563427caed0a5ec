"""Start a process the ways the standard library does: subprocess, posix_spawn, os.system.

subprocess uses the _posixsubprocess C module (fork + exec in C); posix_spawn uses vfork/clone;
os.system forks a shell. seccomp refuses every one of fork, vfork, clone, clone3 and execve,
and RLIMIT_NPROC is 0 besides. The checker rejects the imports.

attack: subprocess/_posixsubprocess, os.posix_spawn, os.system
family: native
layer: seccomp refuses fork/vfork/clone/execve (EPERM); RLIMIT_NPROC 0
expect: error
checker: reject
"""
import os
import subprocess


def act(obs):
    if os.system("touch @HOST_DIR@/owned") == 0:
        print("ESC" + "APED", "os.system")
    try:
        os.posix_spawn("/bin/true", ["true"], {})
        print("ESC" + "APED", "posix_spawn")
    except OSError:
        pass
    subprocess.run(["/bin/sh", "-c", "touch @HOST_DIR@/owned"], check=False)
    print("ESC" + "APED", "subprocess")
    return 0
