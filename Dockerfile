# goavail in a container: s6-svscan is PID 1 and supervises goavail (and, when
# SERF_ENABLE=1, a Serf agent). Build from the repository root with
#
#   make image
#
# which first builds a wheelhouse of goavail and its dependencies on the host
# (build/wheelhouse, `pip wheel`): the build installs from it with `pip install
# --no-index`, never from a package index (air-gapped builds work the same way).
# See README.md, "Deploy" for the commands, docs/deploy.md for what they do; the
# tests build this image with podman and run it (tests/e2e/test_image.py).
#
# Privileges. ICMP probes need raw sockets, i.e. CAP_NET_RAW: Docker grants it by
# default, other runtimes (Podman, Kubernetes' restricted profile) do not, hence
#   docker run --cap-add NET_RAW ...
# s6-svscan runs as root: as PID 1 it reaps and signals every process of the
# container. goavail does not: its run script starts it as the user `goavail`
# (GOAVAIL_USER, uid 10001) with CAP_NET_RAW as its only capability, an ambient
# capability under no_new_privs (setpriv) -- what the systemd unit does with
# User= and AmbientCapabilities=. The Serf agent, when enabled, runs as `goavail`
# too, with no capability. So the smallest set of capabilities is
#   --cap-drop ALL --cap-add NET_RAW --cap-add SETUID --cap-add SETGID --cap-add KILL
# (SETUID, SETGID: to switch to `goavail`; KILL: so that s6, as root, may signal
# processes of another user). With `--user 10001` the whole tree runs unprivileged
# instead: goavail then uses unprivileged ICMP sockets, which need
# net.ipv4.ping_group_range to include gid 10001 (Docker 20.10 and later allow all
# groups by default; else --sysctl net.ipv4.ping_group_range="0 2147483647").
# BASE_IMAGE: any Debian bookworm image with python3 and its venv module; the tests
# use one bootstrapped from Debian packages (mmdebstrap), users the official one.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# goavail in a venv of its own, installed from the wheelhouse only, in a stage of its
# own so that the wheels do not stay in the image.
FROM ${BASE_IMAGE} AS venv
COPY build/wheelhouse /wheelhouse
RUN python3 -m venv /opt/goavail \
    && /opt/goavail/bin/pip install --no-cache-dir --no-index --disable-pip-version-check \
        --find-links /wheelhouse /wheelhouse/goavail-*.whl

FROM ${BASE_IMAGE}

# s6: the supervision tree (it brings execline); serf: cluster gossip. Fetched only
# when the base lacks them (a base built with both makes the build fully offline).
# Debian stable changes these packages only for security fixes, and a version pin
# would break the build as soon as one is published, hence no pins (DL3008).
# hadolint ignore=DL3008
RUN if ! command -v s6-svscan >/dev/null || ! command -v serf >/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends s6 serf \
        && rm -rf /var/lib/apt/lists/*; \
    fi

COPY --from=venv /opt/goavail /opt/goavail

# The user goavail runs as; /var/lib/goavail for audit_file, zone files and the like,
# /var/log/goavail for GOAVAIL_LOG_DIR.
RUN groupadd --system --gid 10001 goavail \
    && useradd --system --uid 10001 --gid goavail --home-dir /var/lib/goavail \
        --no-create-home --shell /usr/sbin/nologin goavail \
    && install -d -o goavail -g goavail -m 0750 /var/lib/goavail /var/log/goavail

# The service tree; owned by goavail so that `--user 10001` can run it too (s6
# writes supervise/ and event/ into every service directory).
COPY --chown=goavail:goavail s6/services /etc/s6/services

# The config file is expected at /etc/goavail/goavail.toml (mount it read-only).
# Dry-run is the default: set GOAVAIL_NO_DRY_RUN=1 to let goavail write DNS.
ENV PATH=/opt/goavail/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    GOAVAIL_USER=goavail \
    GOAVAIL_CONFIG=/etc/goavail/goavail.toml

# Serf gossip (TCP and UDP), and goavail's HTTP server (/_health, /metrics, status
# page; [Server] listen must be "0.0.0.0:8080" for it to be reachable from outside).
EXPOSE 7946/tcp 7946/udp 8080/tcp

# 200 from /_health: healthy; 503 (or no answer): not. GOAVAIL_HEALTH_URL overrides
# the address when [Server] listen is not the default.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen(os.environ.get('GOAVAIL_HEALTH_URL', 'http://127.0.0.1:8080/_health'), timeout=4)"]

# The failover proxy (`goavail proxy`, s6/services/proxy) is off unless HOSTS is set
# (flopsy's PORT, HOSTS and MAX_BACKOFF; /etc/flopsy/check-host.sh and
# /etc/flopsy/triggers.d may be mounted) or GOAVAIL_PROXY=1; see docs/proxy.md.

# SIGTERM (docker stop) makes s6-svscan stop every service, wait for the loggers
# to flush, and exec into .s6-svscan/finish.
CMD ["s6-svscan", "/etc/s6/services"]
