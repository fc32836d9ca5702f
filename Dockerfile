# GPU image of the lip-sync service. Weights are mounted at /app/checkpoints, job data at /app/data.
FROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3-pip ffmpeg curl \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 app
WORKDIR /app
RUN python3.11 -m venv /opt/venv && chown -R app /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# CUDA build of torch first, pinned, so the project's torch range is already satisfied.
RUN pip install "torch==2.6.0" --index-url https://download.pytorch.org/whl/cu124
COPY --chown=app pyproject.toml README.md ./
COPY --chown=app latentsync_core ./latentsync_core
COPY --chown=app server ./server
COPY --chown=app configs ./configs
COPY --chown=app scripts ./scripts
COPY --chown=app assets ./assets
RUN pip install ".[insightface,celery]" && mkdir -p /app/data /app/checkpoints && chown -R app /app

USER app
ENV LATENTSYNC_DATA_DIR=/app/data LATENTSYNC_CHECKPOINT_DIR=/app/checkpoints
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8000/health || exit 1
CMD ["latentsync", "serve", "--host", "0.0.0.0", "--port", "8000"]
