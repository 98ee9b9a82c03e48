#!/usr/bin/env bash
# A single-node Apache Kafka 4.x broker (KRaft, broker+controller) on
# loopback, assembled from Maven Central jars. Used by tests/install-deps.sh
# (fetch) and by the tests through tests/support/kafka.rs (start/stop).
#
#   broker.sh fetch                         jars into $KAFKA_LIBS (target/kafka/libs)
#   broker.sh start DIR PORT CPORT [AUTO]   format DIR/data once, start, wait until it serves
#       with KAFKA_TLS_PORT, KAFKA_TLS_KEYSTORE (PEM: PKCS#8 key + chain) and
#       KAFKA_TLS_CA set: also an SSL listener on that port that requires a
#       client certificate signed by that CA (PLAINTEXT stays for the
#       broker's own traffic, topic creation and the tests' consumer)
#   broker.sh stop DIR                      stop by the PID in DIR/pid (TERM, then KILL)
#   broker.sh topic PORT NAME PARTITIONS    create a topic (Kafka's own TopicCommand)
#
# Pitfalls (see the README of tests/kafka in the lead's notes):
# - Kafka 4.x logs through log4j2 but its pom does not name the log4j2 jars:
#   pom.xml adds them, else "Kafka Server started" is never logged.
# - The storage must be formatted before the first start, with a 22-char
#   base64url cluster id that does not start with '-'; a static quorum
#   (controller.quorum.voters) must be formatted WITHOUT --standalone.
# - A restart reuses DIR/data (no re-format): the topic and offsets stay.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
libs="${KAFKA_LIBS:-$root/target/kafka/libs}"
heap="${KAFKA_HEAP:--Xmx512m}"
ready_timeout_s="${KAFKA_READY_TIMEOUT_S:-120}"

die() { echo "kafka broker: $*" >&2; exit 1; }

fetch() {
  local stamp="$libs/.pom.sha256" sum
  sum="$(sha256sum "$here/pom.xml" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$sum" ]] && ls "$libs"/kafka_2.13-*.jar >/dev/null 2>&1; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  rm -rf "$libs" && mkdir -p "$libs"
  local work; work="$(mktemp -d)"
  cp "$here/pom.xml" "$work/pom.xml"
  (cd "$work" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$libs" -DincludeScope=runtime) \
    || die "mvn could not fetch the Kafka jars (see above)"
  rm -rf "$work"
  ls "$libs"/kafka_2.13-*.jar >/dev/null 2>&1 || die "no kafka_2.13 jar in $libs after mvn"
  echo "$sum" > "$stamp"
}

cluster_id() {
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" != -* ]] && { echo "$id"; return; }
  done
}

start() {
  local dir="$1" port="$2" cport="$3" auto="${4:-true}"
  ls "$libs"/kafka_2.13-*.jar >/dev/null 2>&1 || die "no Kafka jars in $libs: run tests/kafka/broker.sh fetch (tests/install-deps.sh does)"
  command -v java >/dev/null || die "java not found (apt-get install default-jre-headless)"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if [[ -f "$dir/pid" ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    die "a broker already runs from $dir (pid $(cat "$dir/pid"))"
  fi
  sed -e "s#@PORT@#$port#g" -e "s#@CPORT@#$cport#g" -e "s#@DATA@#$dir/data#g" \
      -e "s#@AUTO_CREATE@#$auto#g" "$here/server.properties.in" > "$dir/server.properties"
  if [[ -n "${KAFKA_TLS_PORT:-}" ]]; then
    sed -i -e "s#^listeners=.*#listeners=PLAINTEXT://127.0.0.1:$port,SSL://127.0.0.1:$KAFKA_TLS_PORT,CONTROLLER://127.0.0.1:$cport#" \
      -e "s#^advertised.listeners=.*#advertised.listeners=PLAINTEXT://127.0.0.1:$port,SSL://127.0.0.1:$KAFKA_TLS_PORT#" \
      -e "s#^listener.security.protocol.map=.*#listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL#" \
      "$dir/server.properties"
    cat >> "$dir/server.properties" <<PROPS
ssl.keystore.type=PEM
ssl.keystore.location=$KAFKA_TLS_KEYSTORE
ssl.truststore.type=PEM
ssl.truststore.location=$KAFKA_TLS_CA
ssl.client.auth=required
PROPS
  fi
  local cp="$libs/*"
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    java -Xmx256m -Dlog4j2.configurationFile="$here/log4j2.properties" -cp "$cp" \
      kafka.tools.StorageTool format -t "$(cluster_id)" -c "$dir/server.properties" \
      > "$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; die "storage format failed"; }
  fi
  : > "$dir/broker.log"
  # setsid: the broker is not in the test's process group, so a Ctrl-C of
  # the test does not kill it before the test's own stop.
  setsid java "$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$here/log4j2.properties" -cp "$cp" \
    kafka.Kafka "$dir/server.properties" >> "$dir/broker.log" 2>&1 < /dev/null &
  local pid=$!
  echo "$pid" > "$dir/pid"
  # Ready: the broker logged that it started AND accepts a TCP connection
  # on its listener (the log line alone comes just before the socket
  # server's acceptors run).
  local deadline=$((SECONDS + ready_timeout_s))
  while ((SECONDS < deadline)); do
    kill -0 "$pid" 2>/dev/null || { tail -n 40 "$dir/broker.log" >&2; die "broker exited during start (log: $dir/broker.log)"; }
    if grep -q "Kafka Server started" "$dir/broker.log" && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "kafka broker: pid $pid serving on 127.0.0.1:$port (log $dir/broker.log)"
      return 0
    fi
    sleep 0.2
  done
  tail -n 40 "$dir/broker.log" >&2
  kill -KILL "$pid" 2>/dev/null || true
  die "not ready within ${ready_timeout_s}s (log: $dir/broker.log)"
}

stop() {
  local dir="$1" pid
  [[ -f "$dir/pid" ]] || return 0
  pid="$(cat "$dir/pid")"
  rm -f "$dir/pid"
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "kafka broker: pid $pid still running 30 s after TERM; KILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

topic() {
  local port="$1" name="$2" partitions="$3" out
  out="$(mktemp)"
  local tc=(java -Xmx256m -Dlog4j2.configurationFile="$here/log4j2.properties" -cp "$libs/*"
    org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$port")
  if ! "${tc[@]}" --create --topic "$name" --partitions "$partitions" --replication-factor 1 \
      > "$out" 2>&1 || ! grep -q "Created topic $name" "$out"; then
    grep -v -E '^\s|AbstractConfig' "$out" >&2
    rm -f "$out"
    die "could not create topic $name"
  fi
  rm -f "$out"
}

case "${1:-}" in
  fetch) fetch ;;
  start) shift; [[ $# -ge 3 ]] || die "usage: broker.sh start DIR PORT CPORT [AUTO_CREATE]"; start "$@" ;;
  stop) shift; [[ $# -eq 1 ]] || die "usage: broker.sh stop DIR"; stop "$1" ;;
  topic) shift; [[ $# -eq 3 ]] || die "usage: broker.sh topic PORT NAME PARTITIONS"; topic "$@" ;;
  *) die "usage: broker.sh fetch | start DIR PORT CPORT [AUTO_CREATE] | stop DIR" ;;
esac
