# Tailor decision API: `docker build -t tailor .` then `docker run -p 8080:8080 tailor`.
# Two stages: the build stage installs the pinned dependencies into a virtual environment,
# the runtime stage copies only that environment and the example bundle.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/tailor
COPY requirements/run.lock requirements/run.lock
RUN /opt/tailor/bin/pip install --requirement requirements/run.lock
COPY pyproject.toml README.md ./
COPY service ./service
RUN /opt/tailor/bin/pip install --no-deps .

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 tailor \
 && useradd --system --uid 10001 --gid tailor --no-create-home --shell /usr/sbin/nologin tailor \
 && mkdir -p /srv/bundle /var/lib/tailor \
 && chown tailor:tailor /var/lib/tailor
COPY --from=build /opt/tailor /opt/tailor
# The example bundle; mount another one over /srv/bundle (read-only is fine) to serve it instead.
COPY rules /srv/bundle/rules
COPY content /srv/bundle/content
COPY models /srv/bundle/models
ENV PATH=/opt/tailor/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TAILOR_BUNDLE=/srv/bundle \
    TAILOR_HOST=0.0.0.0 \
    TAILOR_PORT=8080 \
    TAILOR_WORKERS=2 \
    TAILOR_STATE_DIR=/var/lib/tailor
USER tailor
EXPOSE 8080
# Ready means a bundle is loaded; the load balancer should use the same endpoint.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ['TAILOR_PORT'], timeout=2)"]
# granian stops accepting, lets workers finish their requests, then exits on SIGTERM.
STOPSIGNAL SIGTERM
ENTRYPOINT ["tailor", "serve"]
