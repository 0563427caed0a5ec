# The evocade sandbox image: the trusted harness, the policy runner and the libraries they import,
# nothing else (no engine, no storage, no LLM client). One container per worker; the docker
# backend (sandbox/backends/docker.py) runs it read-only, without network or capabilities, as
# uid 65534, with a small tmpfs at /tmp as the only writable place.
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
# in with --no-deps: its declared dependencies add ~350 MB that RAM mode never touches; these are
# what its imports need. numpy<2: ocatari is wrong on numpy 2; opencv 4.11+ needs numpy 2.
# pip trusts the base image's certificate store (which may hold a local proxy's authority, see
# scripts/docker-base.sh) rather than its own bundled one.
RUN if [ -f /etc/ssl/certs/ca-certificates.crt ]; then \
      export PIP_CERT=/etc/ssl/certs/ca-certificates.crt; fi \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install -q \
      "numpy>=1.24,<2" \
      "gymnasium>=1.0,<2" \
      "ale-py>=0.12,<0.13" \
      "opencv-python-headless<4.11" \
      "scikit-image" \
      "matplotlib" \
      "pygame" \
      "termcolor" \
      "RestrictedPython>=7" \
      "pyseccomp>=0.1.2" \
 && /opt/venv/bin/pip install -q --no-deps "ocatari==2.2.1" \
 && /opt/venv/bin/python -m pip uninstall -q -y pip setuptools \
 && find /opt/venv/lib/python3.11/site-packages \
      \( -path '*/numpy/*' -o -path '*/scipy/*' -o -path '*/skimage/*' \
         -o -path '*/matplotlib/*' -o -path '*/pygame/*' -o -path '*/networkx/*' \) \
      -type d -name tests -prune -exec rm -rf {} + \
 && rm -rf /opt/venv/lib/python3.11/site-packages/pygame/examples \
           /opt/venv/lib/python3.11/site-packages/pygame/docs \
 && /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv \
 && chmod -R a+rX /opt/venv

COPY sandbox /opt/evocade/sandbox
# Bytecode checked by hash, never by mtime: the root file system is read-only at run time, and
# an import that cannot use its .pyc recompiles on every start. Then a smoke test: every import
# the runtime makes, libseccomp found, one Pong step.
RUN /opt/venv/bin/python -m compileall -q --invalidation-mode unchecked-hash /opt/evocade \
 && chmod -R a+rX /opt/evocade \
 && cd /tmp \
 && PYTHONPATH=/opt/evocade PYTHONDONTWRITEBYTECODE=1 MPLCONFIGDIR=/tmp MPLBACKEND=Agg \
    /opt/venv/bin/python -s -c "import pyseccomp, sandbox.runtime.policy_runner; \
pyseccomp.SyscallFilter(defaction=pyseccomp.ALLOW); \
from sandbox.runtime.emulator import make_env; \
env = make_env('Pong', 4, 0.0); \
env.reset(seed=0); env.step(0); env.close()" \
 && rm -rf /tmp/* /root/.cache

FROM ${BASE_IMAGE}
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/evocade /opt/evocade
ENV PYTHONPATH=/opt/evocade PYTHONDONTWRITEBYTECODE=1 MPLCONFIGDIR=/tmp MPLBACKEND=Agg \
    HOME=/tmp
LABEL org.opencontainers.image.title="evocade sandbox" \
      evocade.sandbox.python="/opt/venv/bin/python"
USER 65534:65534
WORKDIR /tmp
CMD ["/opt/venv/bin/python", "-s", "-m", "sandbox.runtime.harness"]
