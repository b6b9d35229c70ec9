#!/usr/bin/env bash
# Deploy Brainwave on one Ubuntu 22.04 host with docker compose. Run it again to upgrade:
# every step is idempotent (secrets, certificates and the worker count are kept).
#
#   sudo deploy/deploy.sh --repo <git url> [--branch main] [--dir /opt/brainwave]
#                         [--workers N] [--with-nginx --domain api.example.com
#                         [--email ops@example.com]] [--timeout 300]
#   deploy/deploy.sh env-only <dir> [<template>]
#
# Steps: install Docker Engine and the compose plugin from Docker's apt repository (when
# missing); clone the repository into --dir or fast-forward it to --branch; write
# .env.production from deploy/env.production.template (see write_env); build the images;
# run the migrations (`docker compose run --rm migrate`); start everything; wait until
# GET /api/health/ready answers 200; print the URL.
#
# --with-nginx also starts the `nginx` profile (TLS on 443, HTTP redirected): it gets a
# Let's Encrypt certificate for --domain with certbot (standalone, so port 80 must be open
# and the domain must point at this host) under the name "brainwave", where
# deploy/nginx.conf expects it; the certbot package's timer renews it, stopping nginx for
# the moment it needs port 80. The API is then published on 127.0.0.1 only.
#
# `env-only` does nothing but write <dir>/.env.production from the template (default:
# deploy/env.production.template next to this script).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CERT_NAME=brainwave

REPO_URL=${BRAINWAVE_REPO:-}
BRANCH=${BRAINWAVE_BRANCH:-main}
APP_DIR=${BRAINWAVE_DIR:-/opt/brainwave}
WORKERS=""
WITH_NGINX=0
DOMAIN=""
EMAIL=""
TIMEOUT=300

log() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'deploy.sh: %s\n' "$*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# write_env TEMPLATE TARGET: create TARGET from TEMPLATE, or add to it the keys it lacks.
# Existing values are never changed; JWT_SECRET is generated only when absent or empty.
write_env() {
  local template=$1 target=$2 line key secret tmp
  local -a added=()
  [[ -f $template ]] || die "no template at $template"
  if [[ ! -e $target ]]; then
    (umask 077 && cp "$template" "$target")
    log "wrote $target from $(basename "$template")"
  else
    if [[ -s $target && $(tail -c 1 "$target" | wc -l) -eq 0 ]]; then
      printf '\n' >>"$target"
    fi
    while IFS= read -r line || [[ -n $line ]]; do
      [[ $line =~ ^([A-Za-z_][A-Za-z0-9_]*)= ]] || continue
      key=${BASH_REMATCH[1]}
      if ! grep -q "^${key}=" "$target"; then
        printf '%s\n' "$line" >>"$target"
        added+=("$key")
      fi
    done <"$template"
    if ((${#added[@]} > 0)); then
      log "added to $target: ${added[*]}"
    fi
  fi
  chmod 600 "$target"
  if ! grep -Eq '^JWT_SECRET=.+' "$target"; then
    secret=$(openssl rand -hex 32)
    if grep -q '^JWT_SECRET=' "$target"; then
      # Rewrite through a private temporary file; the secret never appears in argv.
      tmp=$(mktemp "$target.XXXXXX")
      JWT_SECRET_VALUE=$secret awk '
        /^JWT_SECRET=/ && !done { print "JWT_SECRET=" ENVIRON["JWT_SECRET_VALUE"]; done = 1; next }
        { print }' "$target" >"$tmp"
      mv "$tmp" "$target"
    else
      printf 'JWT_SECRET=%s\n' "$secret" >>"$target"
    fi
    log "generated JWT_SECRET in $target"
  fi
}

# set_compose_var KEY VALUE: set KEY in $APP_DIR/.env, Compose's own variables file.
set_compose_var() {
  local file="$APP_DIR/.env" key=$1 value=$2 tmp
  touch "$file"
  if grep -qxF "${key}=${value}" "$file"; then
    return
  fi
  tmp=$(mktemp "$file.XXXXXX")
  grep -v "^${key}=" "$file" >"$tmp" || true
  printf '%s=%s\n' "$key" "$value" >>"$tmp"
  chmod 644 "$tmp"
  mv "$tmp" "$file"
  log "set $key=$value in $file"
}

compose_var() {
  local file="$APP_DIR/.env" key=$1 default=$2 value=""
  if [[ -f $file ]]; then
    value=$(grep "^${key}=" "$file" | tail -n 1 | cut -d= -f2-) || true
  fi
  printf '%s' "${value:-$default}"
}

compose() {
  docker compose --project-directory "$APP_DIR" -f "$APP_DIR/docker-compose.yml" "$@"
}

install_packages() {
  local -a missing=()
  command -v git >/dev/null 2>&1 || missing+=(git)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  [[ -f /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)
  if ((WITH_NGINX)); then
    command -v certbot >/dev/null 2>&1 || missing+=(certbot)
  fi
  if ((${#missing[@]} > 0)); then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

install_docker() {
  if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    log "Docker $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?') with $(docker compose version --short) is installed"
    systemctl enable --now docker >/dev/null 2>&1 || true
    return
  fi
  local codename arch
  # shellcheck source=/dev/null
  codename=$(. /etc/os-release && echo "${UBUNTU_CODENAME:-$VERSION_CODENAME}")
  arch=$(dpkg --print-architecture)
  log "installing Docker Engine and the compose plugin from download.docker.com ($codename)"
  install -m 0755 -d /etc/apt/keyrings
  curl -fsSL https://download.docker.com/linux/ubuntu/gpg -o /etc/apt/keyrings/docker.asc
  chmod a+r /etc/apt/keyrings/docker.asc
  printf 'deb [arch=%s signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/ubuntu %s stable\n' \
    "$arch" "$codename" >/etc/apt/sources.list.d/docker.list
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-ce docker-ce-cli containerd.io \
    docker-buildx-plugin docker-compose-plugin
  systemctl enable --now docker
}

checkout() {
  if [[ -d $APP_DIR/.git ]]; then
    if [[ -n $REPO_URL ]]; then
      git -C "$APP_DIR" remote set-url origin "$REPO_URL"
    fi
    log "updating $APP_DIR to origin/$BRANCH"
    git -C "$APP_DIR" fetch --quiet origin "$BRANCH"
    if git -C "$APP_DIR" show-ref --verify --quiet "refs/heads/$BRANCH"; then
      git -C "$APP_DIR" checkout --quiet "$BRANCH"
      git -C "$APP_DIR" merge --quiet --ff-only "origin/$BRANCH"
    else
      git -C "$APP_DIR" checkout --quiet -b "$BRANCH" --track "origin/$BRANCH"
    fi
  else
    [[ -n $REPO_URL ]] || die "$APP_DIR is not a checkout yet: pass --repo <git url>"
    log "cloning $REPO_URL ($BRANCH) into $APP_DIR"
    git clone --quiet --branch "$BRANCH" "$REPO_URL" "$APP_DIR"
  fi
  log "at $(git -C "$APP_DIR" log -1 --format='%h %s')"
}

obtain_certificate() {
  local stop="docker compose --project-directory $APP_DIR -f $APP_DIR/docker-compose.yml stop nginx || true"
  local start="docker compose --project-directory $APP_DIR -f $APP_DIR/docker-compose.yml start nginx || true"
  local -a account=(--register-unsafely-without-email)
  if [[ -n $EMAIL ]]; then
    account=(--email "$EMAIL")
  fi
  # Does nothing while the certificate for these names is far from expiry. Standalone mode
  # needs port 80, so nginx is stopped for the moment a certificate is being issued.
  log "certificate for $DOMAIN (certbot, name $CERT_NAME)"
  certbot certonly --standalone --non-interactive --agree-tos "${account[@]}" \
    --keep-until-expiring --cert-name "$CERT_NAME" -d "$DOMAIN" \
    --pre-hook "$stop" --post-hook "$start"
}

wait_ready() {
  local published port url deadline body
  published=$(compose_var API_PUBLISHED_PORT 8000)
  port=${published##*:}
  url="http://127.0.0.1:$port/api/health/ready"
  deadline=$((SECONDS + TIMEOUT))
  log "waiting up to ${TIMEOUT}s for $url"
  until body=$(curl -fsS --max-time 5 "$url" 2>/dev/null); do
    if ((SECONDS >= deadline)); then
      compose ps >&2 || true
      compose logs --tail 40 api worker >&2 || true
      die "the API was not ready within ${TIMEOUT}s"
    fi
    sleep 3
  done
  log "ready: $body"
}

deploy() {
  [[ $EUID -eq 0 ]] || die "run as root (sudo): it installs packages and starts Docker"
  if ((WITH_NGINX)) && [[ -z $DOMAIN ]]; then
    die "--with-nginx needs --domain <name> (the certificate is issued for it)"
  fi
  install_packages
  install_docker
  checkout
  write_env "$APP_DIR/deploy/env.production.template" "$APP_DIR/.env.production"
  if ((WITH_NGINX)); then
    set_compose_var COMPOSE_PROFILES nginx
    set_compose_var API_PUBLISHED_PORT 127.0.0.1:8000
    set_compose_var FORWARDED_ALLOW_IPS '*'
  fi

  log "building images"
  compose build --pull
  log "migrating the database"
  compose run --rm migrate
  if ((WITH_NGINX)); then
    obtain_certificate
  fi

  if [[ -z $WORKERS ]]; then
    # Keep the current number of workers (an earlier --scale), else the file's default.
    WORKERS=$( { compose ps --quiet worker 2>/dev/null || true; } | wc -l)
    if ((WORKERS == 0)); then
      WORKERS=2
    fi
  fi
  log "starting (workers: $WORKERS)"
  compose up -d --remove-orphans --scale "worker=$WORKERS"
  wait_ready

  if ((WITH_NGINX)); then
    log "Brainwave is up: https://$DOMAIN/api/health/ready (API docs: https://$DOMAIN/docs)"
  else
    local host
    host=$(hostname -I 2>/dev/null | awk '{print $1}')
    log "Brainwave is up: http://${host:-127.0.0.1}:$(compose_var API_PUBLISHED_PORT 8000)/ (use the host's public address; API docs at /docs)"
  fi
}

main() {
  if [[ ${1:-} == env-only ]]; then
    [[ $# -ge 2 ]] || die "usage: deploy.sh env-only <dir> [<template>]"
    write_env "${3:-$SCRIPT_DIR/env.production.template}" "$2/.env.production"
    return
  fi
  while [[ $# -gt 0 ]]; do
    case $1 in
      --repo) REPO_URL=${2:?--repo needs a value}; shift 2 ;;
      --branch) BRANCH=${2:?--branch needs a value}; shift 2 ;;
      --dir) APP_DIR=${2:?--dir needs a value}; shift 2 ;;
      --workers) WORKERS=${2:?--workers needs a value}; shift 2 ;;
      --with-nginx) WITH_NGINX=1; shift ;;
      --domain) DOMAIN=${2:?--domain needs a value}; WITH_NGINX=1; shift 2 ;;
      --email) EMAIL=${2:?--email needs a value}; shift 2 ;;
      --timeout) TIMEOUT=${2:?--timeout needs a value}; shift 2 ;;
      -h | --help) usage; return ;;
      *) die "unknown argument: $1 (see --help)" ;;
    esac
  done
  [[ $WORKERS =~ ^[0-9]*$ ]] || die "--workers must be a number"
  [[ $TIMEOUT =~ ^[0-9]+$ ]] || die "--timeout must be a number of seconds"
  deploy
}

# One line, so bash has read it whole before a `git pull` can rewrite this file.
main "$@"; exit
