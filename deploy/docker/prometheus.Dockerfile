# Prometheus and the nginx exporter for docker-compose.yml's `observe` profile, both from Debian
# bookworm's packages (prometheus 2.42, prometheus-nginx-exporter 0.11): the same base as every
# other image here, so an offline build needs no registry (deploy/offline-images.sh).
#
# Build context: deploy/docker (nothing is copied in: the configuration, deploy/prometheus/, is
# mounted at run time, so editing a rule needs a restart, not a rebuild).
#   docker build -f deploy/docker/prometheus.Dockerfile --target prometheus -t authscale/prometheus deploy/docker
#   docker build -f deploy/docker/prometheus.Dockerfile --target nginx-exporter -t authscale/nginx-exporter deploy/docker
#
# Two targets of one file, because both are one `apt-get install` of a Debian package and run as
# the package's own system user; nothing else differs.

ARG BASE_IMAGE=debian:bookworm-slim

# Prometheus. --no-install-recommends: the package recommends node-exporter, which would only
# report on the container itself. /prometheus holds the time series database (not a volume: the
# data is as old as the cluster it watches, and `down` forgets both).
FROM ${BASE_IMAGE} AS prometheus
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o prometheus -g prometheus -m 0750 /prometheus
USER prometheus
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["prometheus"]
CMD ["--config.file=/etc/authscale/prometheus/prometheus.yml", \
     "--storage.tsdb.path=/prometheus", \
     "--storage.tsdb.retention.time=1d", \
     "--web.listen-address=0.0.0.0:9090"]

# nginx's stub_status page (connections, requests) turned into metrics Prometheus can scrape:
# stub_status is plain text, not the exposition format.
FROM ${BASE_IMAGE} AS nginx-exporter
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus-nginx-exporter \
 && rm -rf /var/lib/apt/lists/*
USER prometheus
EXPOSE 9113
ENTRYPOINT ["prometheus-nginx-exporter"]
