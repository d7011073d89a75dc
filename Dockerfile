# One image for every process (web, worker, flower); docker-compose.yml picks the command.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /srv/broker
COPY pyproject.toml constraints.txt README.md web.py ./
COPY core ./core
COPY app ./app
COPY tasks ./tasks
COPY proxy ./proxy
RUN pip install --no-cache-dir -c constraints.txt .

ENV PORT=8000 \
    BROKER_STATE_DIR=/var/lib/browser-broker
EXPOSE 8000
CMD ["python", "-m", "web"]
