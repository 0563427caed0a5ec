"""Leave a daemon behind: fork, setsid, fork again, and sleep in the grandchild.

A process that outlived the evaluation could keep running, or wait for the next program.
seccomp refuses fork and setsid; were one to get through, the sandbox's pid namespace and
cgroup are torn down with everything in them, and the suite checks that no process of the
test's is left either way.

attack: double fork + setsid daemon that tries to outlive the evaluation
family: persistence
layer: seccomp refuses fork/setsid (EPERM); the pid namespace and cgroup die with the sandbox
expect: error
checker: reject
"""
import os
import time


def act(obs):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(3600)
        os._exit(0)
    print("ESC" + "APED", "forked a daemon")
    return 0
