#!/usr/bin/env bash
# Sets up everything the test suite needs on a fresh machine, then runs it:
#   a virtualenv with esm and its test dependencies, the system packages the real test
#   servers need (redis-server, rabbitmq-server, a JDK, Maven), the servers themselves
#   (Kafka, ActiveMQ and ElasticMQ jars from Maven Central, AWS's Lambda Runtime
#   Interface Emulator built with the machine's Go toolchain, all cached outside the
#   repo), then pytest.
# Extra arguments go to pytest, e.g. `tests/run.sh tests/unit -x`.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
venv=${ESM_VENV:-.venv}

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e '.[test]'

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# The broker's own start script, never its system service (tests/servers/rabbitmq_server.py).
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
# a JDK, not only a JRE: the ActiveMQ harness compiles its small broker launcher with javac
command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing system packages: ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
fi

"$venv/bin/python" -m tests.servers install
exec "$venv/bin/python" -m pytest -p no:cacheprovider "$@"
