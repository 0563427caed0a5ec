# The evocade sandbox image: the trusted harness, the policy runner and the libraries they import,
# nothing else (no engine, no storage, no LLM client). One container per episode; the docker
# backend (sandbox/backends/docker.py) runs it read-only, without network, with nothing writable.
#
#   evocade sandbox build-image        (sandbox/backends/docker_image.py: build_image)
#
# which also labels the image with the hash of its sources, so that a stale image is noticed. By
# hand (unlabelled, so reported stale): `docker build --network host --build-arg
# BASE_IMAGE=evocade-base:bookworm -t evocade-sandbox:latest .`; `--network host` because an
# engine started by scripts/dockerd.sh has no bridge network, and pip must reach PyPI.
#
# BASE_IMAGE: any Debian-like image with python3.11 + venv. Where no registry is reachable,
# scripts/docker-base.sh makes evocade-base:bookworm offline (DESIGN.md §5).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# Pins as in pyproject.toml (tests/sandbox/test_docker_backend.py checks they agree). ocatari goes
# in with --no-deps: its declared dependencies add ~350 MB that RAM mode never touches, and its
# vision stack is served as placeholders (sandbox/runtime/lean_imports.py); these are what RAM
# mode uses. numpy<2: ocatari is wrong on numpy 2.
# pip trusts the base image's certificate store (which may hold a local proxy's authority, see
# scripts/docker-base.sh) rather than its own bundled one.
RUN if [ -f /etc/ssl/certs/ca-certificates.crt ]; then \
      export PIP_CERT=/etc/ssl/certs/ca-certificates.crt; fi \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install -q \
      "numpy>=1.24,<2" \
      "gymnasium>=1.0,<2" \
      "ale-py>=0.12,<0.13" \
      "scipy>=1.10" \
      "termcolor" \
      "orjson>=3.9" \
      "RestrictedPython>=7" \
      "pyseccomp>=0.1.2" \
 && /opt/venv/bin/pip install -q --no-deps "ocatari==2.2.1" \
 && /opt/venv/bin/python -m pip uninstall -q -y pip setuptools \
 && find /opt/venv/lib/python3.11/site-packages \
      \( -path '*/numpy/*' -o -path '*/scipy/*' \) -type d -name tests -prune \
      -exec rm -rf {} + \
 && /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv \
 && chmod -R a+rX /opt/venv

COPY sandbox /opt/evocade/sandbox
# Bytecode checked by hash, never by mtime: the root file system is read-only at run time, and
# an import that cannot use its .pyc recompiles on every start. Then a smoke test: every import
# the runtime makes, libseccomp found, one Pong step.
RUN /opt/venv/bin/python -m compileall -q --invalidation-mode unchecked-hash /opt/evocade \
 && chmod -R a+rX /opt/evocade \
 && cd /tmp \
 && PYTHONPATH=/opt/evocade PYTHONDONTWRITEBYTECODE=1 \
    /opt/venv/bin/python -s -c "import pyseccomp, sandbox.runtime.policy_runner; \
pyseccomp.SyscallFilter(defaction=pyseccomp.ALLOW); \
from sandbox.runtime.emulator import make_env; \
env = make_env('Pong', 4, 0.0); \
env.reset(seed=0); env.step(0); env.close()" \
 && rm -rf /tmp/* /root/.cache

FROM ${BASE_IMAGE}
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/evocade /opt/evocade
ENV PYTHONPATH=/opt/evocade PYTHONDONTWRITEBYTECODE=1 HOME=/tmp
LABEL org.opencontainers.image.title="evocade sandbox" \
      evocade.sandbox.python="/opt/venv/bin/python"
# The docker backend starts the harness as root with only CAP_SETUID/CAP_SETGID, gives the policy
# and the harness uids of their own, and drops (sandbox/backends/docker.py); by hand it runs
# as nobody.
USER 65534:65534
WORKDIR /
CMD ["/opt/venv/bin/python", "-s", "-m", "sandbox.runtime.harness"]
