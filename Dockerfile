# syntax=docker/dockerfile:1
# sageLLM Control Plane image: one `sagellm` entrypoint for the operator, the router and the
# simulator (`sagellm operator|router|sim|plan ...`).
#
#   docker build -t sagellm/sagellm:0.1.0 .
#
# tests/docker/ replays the pip steps below (RUN lines in exec form) in a fresh virtualenv.

ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: build the project wheel -------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core/ core/
COPY operator/ operator/
COPY router/ router/
COPY simulator/ simulator/
COPY embed/ embed/
RUN ["pip", "wheel", "--no-deps", "--wheel-dir", "/wheels", "."]

# --- runtime: the wheel and its dependencies, nothing else ---------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    ["pip", "install", "--no-compile", "--find-links", "/wheels", "sagellm-control-plane"]
RUN ["groupadd", "--system", "--gid", "10001", "sagellm"]
RUN ["useradd", "--system", "--uid", "10001", "--gid", "10001", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "sagellm"]
USER 10001:10001
WORKDIR /tmp
# Router HTTP (the operator's /metrics is 9090, engines serve on 8000).
EXPOSE 8080
ENTRYPOINT ["sagellm"]
CMD ["--help"]
