# bmcore studio: the Streamlit app on a CPU, with its workspace on a volume.
#   docker build -t bmcore-studio .
#   docker run -p 8501:8501 -v bmcore-data:/data bmcore-studio
# On a Hugging Face Docker Space, the app must listen on port 7860: run it with
#   CMD ["streamlit", "run", "app.py", "--server.port", "7860", "--server.address", "0.0.0.0"]
# (or keep this file and set `app_port: 8501` in the Space's README front matter).
# To serve a trained model over HTTP instead of the dashboard (README, Serve), override the command:
#   docker run -p 8000:8000 -v bmcore-data:/data -e BMCORE_API_KEY=change-me bmcore-studio \
#     python -m bmcore serve --model /data/workspace/runs/<run> --host 0.0.0.0 --port 8000
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TOKENIZERS_PARALLELISM=false \
    BMCORE_WORKSPACE=/data/workspace \
    HF_HOME=/data/hf-cache

# Public-demo limits (see README, Deployment); uncomment to cap what visitors can run:
# ENV BMCORE_PUBLIC_DEMO=1 BMCORE_MAX_TRAIN_ROWS=5000 BMCORE_MAX_EPOCHS=3 BMCORE_MAX_JOBS=1 BMCORE_ALLOW_HUB=0

WORKDIR /app
# Debian packages from packages.txt (as Spaces and Community Cloud install them): dataset-fashion-mnist, the files
# of builtin:fashion-mnist in /usr/share/datasets/fashion-mnist (31 MB).
COPY packages.txt .
RUN apt-get update && xargs apt-get install -y --no-install-recommends < packages.txt && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
# torch 2.13.0 pinned to the CPU build. The index this project is built against serves the CPU wheel under
# that name; on the public PyPI, `torch==2.13.0` is the CUDA build (several GB), so there add
#   --extra-index-url https://download.pytorch.org/whl/cpu
# and pin torch==2.13.0+cpu to get the CPU wheel (about 200 MB).
RUN pip install torch==2.13.0 -r requirements.txt

RUN useradd --create-home --uid 1000 bmcore \
    && mkdir -p /data/workspace /data/hf-cache \
    && chown -R bmcore:bmcore /data
COPY --chown=bmcore:bmcore . .
USER bmcore

VOLUME /data
EXPOSE 8501
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)" \
     || python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)" || exit 1

CMD ["streamlit", "run", "app.py", "--server.port", "8501", "--server.address", "0.0.0.0", "--server.headless", "true"]
