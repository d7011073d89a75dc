# One image for every process (web, worker, flower); docker-compose.yml picks the command.
#
# The image runs as the unprivileged user `broker`. Chromium runs as that user too, so whatever a
# tenant could make a browser read, the worker's files (snapshots, its environment with
# BROKER_SECRET_KEY) are readable to it as well: for one user per browser instead (the README's
# "Security" section), run the worker container as root (`user: root`); it then starts every browser
# and ChromeDriver as one of the users bb-browser-N created below, never as root.
#
# Chromium's sandbox needs user namespaces: Docker's default seccomp profile refuses them to a
# process without CAP_SYS_ADMIN, so in a default container the worker finds no usable sandbox, logs
# "CHROMIUM SANDBOX OFF" and runs browsers with --no-sandbox (BROKER_CHROMIUM_SANDBOX=auto). Give the
# worker a seccomp profile that allows clone/unshare with CLONE_NEWUSER (Docker's default plus those)
# and a host that allows unprivileged user namespaces, and it finds the sandbox and uses it; set
# BROKER_CHROMIUM_SANDBOX=on to refuse to start without it.

# rrweb and rrweb-player as scripts/setup.sh installs them (npm ci from assets/rrweb's lock file), in a stage of
# their own so the image carries their built files and no Node: the worker injects rrweb into recorded sessions'
# pages and the web process serves rrweb-player (/replay), both from assets/rrweb/node_modules beside core.
FROM node:20-bookworm-slim AS rrweb
WORKDIR /rrweb
COPY assets/rrweb/package.json assets/rrweb/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.11-slim-bookworm

# tini runs as PID 1 and reaps what re-parents to it: Chromium's helper processes outlive a killed
# browser for a moment, and a container without an init keeps them as zombies.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-l10n chromium-driver tini \
 && rm -rf /var/lib/apt/lists/*

# Chromium's managed policy (machine-wide): no file://, chrome://, devtools://, view-source: for any page.
COPY tasks/chromium_policy.json /etc/chromium/policies/managed/browser-broker.json

# `broker` runs the processes; bb-browser-0..15 are the browsers' users when the worker runs as root.
RUN groupadd --system bb-browser \
 && for i in $(seq 0 15); do useradd --system --gid bb-browser --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "bb-browser-$i"; done \
 && useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin broker \
 && install -d -o broker -g broker -m 0700 /var/lib/browser-broker /var/lib/browser-broker/snapshots

WORKDIR /srv/broker
COPY pyproject.toml constraints.txt README.md Procfile web.py ./
COPY core ./core
COPY app ./app
COPY tasks ./tasks
COPY proxy ./proxy
# core/recordings.py looks for rrweb at ../assets/rrweb/node_modules from itself: here, beside ./core.
COPY --from=rrweb /rrweb/node_modules ./assets/rrweb/node_modules
RUN pip install --no-cache-dir -c constraints.txt .

ENV PORT=8000 \
    BROKER_STATE_DIR=/var/lib/browser-broker \
    BROKER_PROFILES_DIR=/tmp/browser-broker-profiles
# 8000: the web process (API + CDP relay). 9223: a worker's gateway, for the web process only.
EXPOSE 8000 9223
USER broker
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "-m", "web"]
