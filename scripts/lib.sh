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

apt_install_without_service() { # PACKAGE UNIT: a package wanted for a command it ships (promtool), not its server
  local package=$1 unit=$2 policy=/usr/sbin/policy-rc.d made=0 status=0
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' && return 0
  # Debian's switch for "maintainer scripts start no service" (invoke-rc.d and deb-systemd-invoke ask it): a
  # policy-rc.d answering 101, for this install only, unless the machine has one of its own (Docker images do).
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod 755 "$policy" && made=1
  fi
  apt_install "$package" || status=$?
  ((made)) && $SUDO rm -f "$policy"
  # The unit is still enabled (it would start at the next boot): under systemd, disable it, and stop it should
  # anything have started it. Only a package this call installed gets here.
  if ((status == 0)) && [[ -d /run/systemd/system ]]; then
    $SUDO systemctl disable --now "$unit" >/dev/null 2>&1 || true
  fi
  return "$status"
}

ensure_venv() { # .venv exactly as requirements/test.txt locks it (scripts/update-deps refreshes the lock)
  local lock=$ROOT/requirements/test.txt
  local stamp="$VENV/.installed-$(cat "$lock" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
  if [[ -f $stamp ]]; then
    "$VENV/bin/python" "$ROOT/scripts/lockfile.py" check "$lock" && return 0
    say ".venv has drifted from the lock (above): making it again"
  fi
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "python3 >= 3.11 is required"
  python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv
  # A new venv each time: installing over an old one would keep packages the lock dropped.
  say "installing the locked dependencies (requirements/test.txt) and the project into .venv"
  rm -rf "$VENV" && python3 -m venv "$VENV"
  mkdir -p "$STATE" # pip's own warnings (about this machine's pip.conf, say) go to the log, shown on failure
  "$VENV/bin/python" -m pip install -q --require-hashes --no-deps -r "$lock" >"$STATE/pip-lock.log" 2>&1 ||
    die "installing $lock failed: $(tail -20 "$STATE/pip-lock.log")"
  "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$ROOT" >"$STATE/pip-project.log" 2>&1 ||
    die "installing the project failed: $(tail -20 "$STATE/pip-project.log")"
  "$VENV/bin/python" -m pip check >/dev/null || die "the lock is inconsistent: $("$VENV/bin/python" -m pip check)"
  "$VENV/bin/python" "$ROOT/scripts/lockfile.py" check "$lock" || die ".venv differs from $lock (see above)"
  touch "$stamp"
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
