#!/usr/bin/env bash
# Real services for Reelflow's tests and benchmarks, on 127.0.0.1:
#   - Apache Kafka 4.x in KRaft mode, one broker, from Maven Central jars
#   - PostgreSQL from Debian
#   - versitygw, an Apache-2.0 S3 server, built through the Go module proxy
# plus ffmpeg/ffprobe from Debian.
#
#   scripts/services.sh start   install what is missing, start, health-check
#   scripts/services.sh stop    stop everything this script started
#   scripts/services.sh env     print the environment the tests read
#
# Downloads and builds are cached under $REELFLOW_CACHE keyed by version;
# state and logs go to $REELFLOW_SERVICES_DIR (kept after `stop` so a failed
# run can be inspected; `start` wipes it).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"

KAFKA_VERSION="4.1.1"
VERSITYGW_VERSION="v1.8.0"
# Under /tmp, not the cache: PostgreSQL runs as its own user and must be
# able to reach its directory.
RUN="${REELFLOW_SERVICES_DIR:-${TMPDIR:-/tmp}/reelflow-services-$(id -u)}"
KAFKA_PORT="${REELFLOW_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${REELFLOW_KAFKA_CONTROLLER_PORT:-19093}"
PG_PORT="${REELFLOW_PG_PORT:-15432}"
S3_PORT="${REELFLOW_S3_PORT:-19000}"
S3_ACCESS="reelflow-test"
S3_SECRET="reelflow-test-secret"
PG_PASSWORD="reelflow-test"

# Keyed by the pom too, so changing a dependency refetches.
KAFKA_HOME="$REELFLOW_CACHE/kafka-$KAFKA_VERSION-$(sha1sum "$HERE/kafka/pom.xml" | cut -c1-8)"
VERSITYGW="$REELFLOW_CACHE/versitygw-$VERSITYGW_VERSION/versitygw"

wait_for() { # description timeout-seconds command...
  local what="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "error: $what did not become healthy within ${timeout}s" >&2
      return 1
    fi
    sleep 0.5
  done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

install_kafka() {
  if [ ! -f "$KAFKA_HOME/classpath" ]; then
    command -v mvn >/dev/null || apt_install maven
    command -v java >/dev/null || apt_install openjdk-17-jre-headless
    say "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central"
    rm -rf "$KAFKA_HOME.tmp" && mkdir -p "$KAFKA_HOME.tmp/libs"
    mvn -q -B -f "$HERE/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_HOME.tmp/libs"
    echo "$KAFKA_HOME/libs/*" > "$KAFKA_HOME.tmp/classpath"
    rm -rf "$KAFKA_HOME" && mv "$KAFKA_HOME.tmp" "$KAFKA_HOME"
  fi
}

install_versitygw() {
  if [ ! -x "$VERSITYGW" ]; then
    command -v go >/dev/null || die "go not found: it builds the S3 server (versitygw) from the Go module proxy"
    say "building versitygw $VERSITYGW_VERSION through the Go module proxy"
    GOBIN="$(dirname "$VERSITYGW")" GOFLAGS=-mod=mod go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
  fi
}

pg_bin() {
  local initdb
  initdb="$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1 || true)"
  [ -n "$initdb" ] || { apt_install postgresql; initdb="$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)"; }
  dirname "$initdb"
}

# PostgreSQL refuses to run as root: run it as the postgres user then.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_kafka() {
  local dir="$RUN/kafka"
  mkdir -p "$dir/data"
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
# One broker: internal topics cannot be replicated.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Topics are created explicitly by Reelflow; a typo must not create one.
auto.create.topics.enable=false
# Tests join and leave consumer groups constantly: rebalance at once.
group.initial.rebalance.delay.ms=0
PROPS
  cat > "$dir/log4j2.properties" <<PROPS
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $dir/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
PROPS
  local cp; cp="$(cat "$KAFKA_HOME/classpath")"
  local cluster_id
  # Base64 of a random UUID, as Kafka's own `random-uuid` makes it: one in
  # 64 starts with '-', which the storage tool would take for an option, so
  # draw again until it does not (Kafka's Uuid.randomUuid does the same).
  cluster_id="$(python3 -c 'import uuid,base64
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s)
        break')"
  java -cp "$cp" -Dlog4j2.configurationFile="$dir/log4j2.properties" kafka.tools.StorageTool \
    format -t "$cluster_id" -c "$dir/server.properties" > "$dir/format.log" 2>&1 \
    || { cat "$dir/format.log" >&2; die "formatting Kafka storage failed"; }
  nohup java -Xms256m -Xmx1g -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    -cp "$cp" kafka.Kafka "$dir/server.properties" > "$dir/stdout.log" 2>&1 &
  echo $! > "$dir/pid"
  wait_for "Kafka" 120 kafka_ready "$dir"
}

kafka_ready() { port_open "$KAFKA_PORT" && grep -q "Kafka Server started" "$1/server.log"; }

start_postgres() {
  local bin; bin="$(pg_bin)"
  local dir="$RUN/postgres"
  mkdir -p "$dir"
  echo "$PG_PASSWORD" > "$dir/pwfile"
  [ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$dir"
  chmod 700 "$dir"
  as_pg "$bin/initdb" -D "$dir/data" -U reelflow --pwfile="$dir/pwfile" --auth=scram-sha-256 > "$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $dir -c fsync=off" start > /dev/null
  PGPASSWORD="$PG_PASSWORD" psql -q -h 127.0.0.1 -p "$PG_PORT" -U reelflow -d postgres \
    -c "CREATE DATABASE reelflow_test" > /dev/null
  wait_for "PostgreSQL" 30 "$bin/pg_isready" -h 127.0.0.1 -p "$PG_PORT"
}

start_s3() {
  local dir="$RUN/s3"
  mkdir -p "$dir/root"
  nohup "$VERSITYGW" --access "$S3_ACCESS" --secret "$S3_SECRET" --port "127.0.0.1:$S3_PORT" --quiet \
    posix "$dir/root" > "$dir/server.log" 2>&1 &
  echo $! > "$dir/pid"
  wait_for "the S3 server" 30 port_open "$S3_PORT"
}

print_env() {
  cat <<ENV
export REELFLOW_TEST_KAFKA=127.0.0.1:$KAFKA_PORT
export REELFLOW_TEST_DATABASE_URL=postgres://reelflow:$PG_PASSWORD@127.0.0.1:$PG_PORT/reelflow_test
export REELFLOW_TEST_S3_ENDPOINT=http://127.0.0.1:$S3_PORT
export REELFLOW_TEST_S3_ACCESS_KEY_ID=$S3_ACCESS
export REELFLOW_TEST_S3_SECRET_ACCESS_KEY=$S3_SECRET
export REELFLOW_KAFKA_CLASSPATH='$(cat "$KAFKA_HOME/classpath" 2>/dev/null)'
ENV
}

stop_all() {
  local dir="$RUN"
  for pidfile in "$dir/kafka/pid" "$dir/s3/pid"; do
    if [ -f "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      # Give Kafka a moment for a clean shutdown, then make sure.
      for _ in $(seq 1 20); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.5; done
      kill -9 "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    fi
  done
  if [ -d "$dir/postgres/data" ]; then
    as_pg "$(pg_bin)/pg_ctl" -D "$dir/postgres/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

case "${1:-}" in
  start)
    stop_all
    rm -rf "$RUN" && mkdir -p "$RUN"
    apt_install ffmpeg
    install_kafka
    install_versitygw
    say "starting Kafka $KAFKA_VERSION, PostgreSQL and versitygw $VERSITYGW_VERSION (state in $RUN)"
    start_kafka &
    kafka_job=$!
    start_postgres
    start_s3
    wait "$kafka_job" || die "Kafka failed to start; see $RUN/kafka/server.log"
    command -v ffprobe >/dev/null || die "ffprobe missing after installing ffmpeg"
    say "services are healthy"
    ;;
  stop) stop_all ;;
  env) print_env ;;
  logs)
    for f in "$RUN"/*/server.log "$RUN"/kafka/stdout.log; do
      [ -f "$f" ] && { echo "----- $f (last 40 lines)"; tail -n 40 "$f"; }
    done
    ;;
  *) echo "usage: $0 start|stop|env|logs" >&2; exit 2 ;;
esac
