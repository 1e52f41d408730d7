# nginx for docker compose: Debian's nginx-light, the project's one template
# (deploy/nginx/nginx.conf.template), the demo page (deploy/web) and authscale-nginx, which
# renders the template from the replicas' addresses and reloads nginx when they change (see
# nginx-entrypoint.sh for why).
#
# Build context: deploy/ (docker-compose.yml: `context: ./deploy`).
#   docker build -f deploy/docker/nginx.Dockerfile -t authscale/nginx deploy
#
# Debian bookworm, not the nginx image: the same nginx (1.22) as `cargo xtask up` uses on the
# host, and the same base as every other image here, so an offline build needs one base image
# (deploy/offline-images.sh).

ARG BASE_IMAGE=debian:bookworm-slim

# The demo page, if there is one: COPY fails on a source that does not exist, so copy all of
# deploy/ into a throw-away stage and keep web/ when it is there (an empty directory when not).
FROM ${BASE_IMAGE} AS web
COPY . /deploy/
RUN mkdir -p /web && if [ -d /deploy/web ]; then cp -R /deploy/web/. /web/; fi

FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o www-data -g www-data -m 0755 /var/lib/authscale-nginx
COPY nginx/nginx.conf.template /etc/authscale/nginx.conf.template
COPY docker/nginx-entrypoint.sh /usr/local/bin/authscale-nginx
COPY --from=web /web/ /usr/share/authscale/web/
# Not root: nginx listens on 8080 (no privileged port), writes only under its prefix
# (/var/lib/authscale-nginx) and logs to stderr.
USER www-data
EXPOSE 8080
ENTRYPOINT ["authscale-nginx"]
