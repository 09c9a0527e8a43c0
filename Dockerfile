# Web image: Django + daphne + Channels. No torch, no GPU libraries.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    REFACT_DATA_DIR=/data

# git and ssh clone project sources; nothing else is needed at run time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 refact \
    && mkdir -p /data && chown refact:refact /data

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY --chown=refact:refact . .
# Hashed, compressed static files served by the app itself (whitenoise). The key is for this step only.
RUN SECRET_KEY=collectstatic-only-not-a-runtime-key-0000000000 REFACT_DATA_DIR=/tmp/build \
    python manage.py collectstatic --noinput --verbosity 0 && rm -rf /tmp/build

USER refact
VOLUME ["/data"]
EXPOSE 8008
CMD ["sh", "-c", "python manage.py migrate --noinput && exec python manage.py serve --port 8008"]
