"""Read /etc/shadow and other system secrets.

bwrap mounts no /etc beyond ld.so.cache, so the file is not there; the docker image has its own
/etc/shadow, readable by root only, and the policy runs as uid 65534. The checker rejects open().

attack: read /etc/shadow, /root/.ssh, /etc/ssh host keys
family: host
layer: mount namespace (bwrap: no such file); uid 65534 (docker: permission denied)
expect: error
checker: reject
"""


def act(obs):
    for path in ("/root/.ssh/id_rsa", "/etc/ssh/ssh_host_ed25519_key", "/root/.bash_history"):
        try:
            with open(path) as handle:
                print("ESC" + "APED", path, handle.read(64))
        except OSError:
            pass
    with open("/etc/shadow") as handle:
        print("ESC" + "APED", handle.read(64))
    return 0
