# syntax=docker/dockerfile:1
# mlops-gates in a container, for runners that should not install anything, the GitLab components (input
# `image`), `serve` for rollout controllers, and checks at the door of serving. Slim, non-root, the base pinned by
# digest, the signing and serve extras in.
#   docker build -t mlops-gates .
#   docker run --rm -v "$PWD:/work" mlops-gates mlops-gates evaluate --policy gates.yml --out gate-out
# The base's digest is python:3.12-slim-bookworm's multi-platform index; .github/dependabot.yml keeps it current.
ARG PYTHON_IMAGE=python:3.12-slim-bookworm@sha256:782412e85d0f0984994c290652577d4018aff08145c85b262bb63dc0c7522254

FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY mlops_gates/ mlops_gates/
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /out .

# The wheel the image installs. The release workflow replaces this stage with the wheel it built and tested
# (docker build --build-context dist=dist/), so the image carries the same file as PyPI.
FROM scratch AS dist
COPY --from=wheel /out/ /

FROM ${PYTHON_IMAGE} AS venv
COPY --from=dist / /wheels/
RUN python -m venv /opt/mlops-gates \
 && set -- /wheels/mlops_gates-*.whl \
 && /opt/mlops-gates/bin/pip install --no-cache-dir --disable-pip-version-check "$1[signing,serve]"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.source="https://github.com/mlops-gates/mlops-gates" \
      org.opencontainers.image.description="A promotion gate for machine-learning models" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/gate --shell /usr/sbin/nologin gate
COPY --from=venv /opt/mlops-gates /opt/mlops-gates
# MLOPS_GATES_VENV: the actions and components find mlops-gates here and install nothing
ENV PATH=/opt/mlops-gates/bin:$PATH \
    MLOPS_GATES_VENV=/opt/mlops-gates \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /work
# No ENTRYPOINT: CI runners (GitLab, GitHub container jobs) and Kubernetes init containers give the command.
CMD ["mlops-gates", "--help"]
