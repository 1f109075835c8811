# Shared bootstrap for scripts/test and scripts/demo: idempotent, for a fresh Debian/Ubuntu machine.
# Source it; it defines functions only. Services it starts keep running for the next command and are
# recorded (pid files, logs) under $TOOLRUNNER_STATE.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${TOOLRUNNER_STATE:-/var/tmp/toolrunner}
VENV=$ROOT/.venv
SUDO=""
[[ $(id -u) == 0 ]] || SUDO=sudo

say() { printf '\033[1m[toolrunner]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[toolrunner] ERROR:\033[0m %s\n' "$*" >&2; exit 1; }

STARTED=() # "name pid" of every service these functions started, for scripts that stop what they start

APT_UPDATED=0
apt_install() { # install the Debian packages that are not installed yet
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  say "installing ${missing[*]}"
  if ((!APT_UPDATED)); then $SUDO apt-get update -qq && APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_venv() { # .venv with the project and its test extras, reinstalled only when pyproject.toml changes
  local stamp="$VENV/.installed-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
  [[ -f $stamp ]] && return 0
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "python3 >= 3.11 is required"
  python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv
  [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
  say "installing the project into .venv"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  "$VENV/bin/pip" install -q -e "$ROOT[test]" >/dev/null
  rm -f "$VENV"/.installed-* && touch "$stamp"
}

docker_answers() { timeout 10 docker info >/dev/null 2>&1; }

ensure_docker() { # a Docker Engine: the one DOCKER_HOST names, the local one, or a dockerd we start
  command -v dockerd >/dev/null && command -v docker >/dev/null || apt_install docker.io
  docker_answers && return 0
  [[ -z ${DOCKER_HOST:-} ]] || die "DOCKER_HOST=$DOCKER_HOST does not answer"
  mkdir -p "$STATE"
  say "starting dockerd (no bridge, no iptables: containers get only none/host networking)"
  # setsid: the daemon outlives this script and is not killed by a Ctrl-C meant for it.
  $SUDO setsid dockerd --bridge=none --iptables=false >"$STATE/dockerd.log" 2>&1 </dev/null &
  echo $! >"$STATE/dockerd.pid"
  STARTED+=("dockerd $!")
  for _ in $(seq 60); do docker_answers && return 0; sleep 1; done
  die "dockerd did not answer within 60 s; see $STATE/dockerd.log"
}

redis_answers() { timeout 5 redis-cli -h 127.0.0.1 -p "${REDIS_PORT:-6379}" ping 2>/dev/null | grep -q PONG; }

ensure_redis() { # a Redis on 127.0.0.1 without persistence
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || apt_install redis-server
  redis_answers && return 0
  mkdir -p "$STATE"
  say "starting redis-server on 127.0.0.1:${REDIS_PORT:-6379} (no persistence)"
  redis-server --bind 127.0.0.1 --port "${REDIS_PORT:-6379}" --save "" --appendonly no --daemonize yes \
    --pidfile "$STATE/redis.pid" --logfile "$STATE/redis.log" --dir "$STATE" >/dev/null
  for _ in $(seq 30); do
    if redis_answers; then
      STARTED+=("redis-server $(cat "$STATE/redis.pid")")
      return 0
    fi
    sleep 0.5
  done
  die "redis-server did not answer; see $STATE/redis.log"
}

stop_started() { # stop, by PID, every service this script started (newest first)
  local i name pid
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
    read -r name pid <<<"${STARTED[i]}"
    kill -0 "$pid" 2>/dev/null || continue
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  done
  STARTED=()
}

bootstrap() { # everything both commands need
  command -v sudo >/dev/null || [[ -z $SUDO ]] || die "run as root or install sudo"
  command -v docker-compose >/dev/null || apt_install docker-compose # validates docker-compose.yml in tests
  ensure_venv
  ensure_docker
  ensure_redis
  "$ROOT/scripts/build-images" "$@"
}
