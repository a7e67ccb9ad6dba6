#!/usr/bin/env bash
# Installs the external services the cluster-mode tests start on loopback (see docs/SERVICES.md):
#   apt       redis-server + redis-tools, nginx, prometheus from Debian; a Java runtime (the
#             machine's if it is 11 or newer, else default-jre-headless) and maven if missing
#   kafka     Apache Kafka $CHAT_KAFKA_VERSION (default 3.9.2) broker + tools: the jars of
#             org.apache.kafka:kafka_2.13 and kafka-tools with their runtime dependencies, fetched
#             from Maven Central by `mvn dependency:copy-dependencies` into
#             $CHAT_SERVICES_CACHE/kafka-<version>/libs
#   ferretdb  FerretDB $CHAT_FERRETDB_VERSION (default v1.24.2), the module from the Go module
#             proxy built with the machine's Go into $CHAT_SERVICES_CACHE/bin/ferretdb
# Usage: scripts/install-services.sh [apt] [kafka] [ferretdb]     (no argument: all three)
# Idempotent: what is installed is checked and skipped, so a second run needs no network.
# CHAT_SERVICES_CACHE defaults to ~/.cache/chatd. Runs as root (or with sudo for apt).
set -euo pipefail
svc_name=install-services
. "$(dirname "$0")/services/lib.sh"

steps=("$@")
((${#steps[@]})) || steps=(apt kafka ferretdb)
t_all=$(now_ms)
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

have_pkg() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

java_major() {
  command -v java >/dev/null || { echo 0; return; }
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1
}

install_apt() {
  local pkgs=(redis-server redis-tools nginx prometheus) missing=() p
  (($(java_major) >= 11)) || pkgs+=(default-jre-headless)
  command -v mvn >/dev/null || pkgs+=(maven)
  for p in "${pkgs[@]}"; do have_pkg "$p" || missing+=("$p"); done
  if ((${#missing[@]} == 0)); then
    log "apt: present: ${pkgs[*]}"
  else
    log "apt: installing ${missing[*]}"
    $SUDO apt-get update -qq
    # The packages' init scripts would start system-wide instances on the default ports; the tests
    # start their own, so keep the system ones from starting where policy-rc.d doesn't already.
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $SUDO apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
  log "apt: $(redis-server --version | cut -d' ' -f1-3), $(nginx -v 2>&1), $(prometheus --version 2>&1 | head -n1 | cut -d' ' -f1-3), java $(java_major)"
}

install_kafka() {
  local v=$CHAT_KAFKA_VERSION home=$CHAT_SERVICES_CACHE/kafka-$CHAT_KAFKA_VERSION
  if [ -f "$home/libs/.complete" ]; then
    log "kafka: $v present in $home/libs ($(ls "$home/libs" | grep -c '\.jar$') jars)"
    return
  fi
  command -v mvn >/dev/null || die "kafka: mvn missing (run the apt step)"
  mkdir -p "$home"
  # kafka-tools brings TopicCommand and friends; connect-runtime (Jetty, Jersey) is only for its
  # Connect plugin tool, so it is left out (~25 MB).
  cat >"$home/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>chatd.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>$v</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$v</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$v</version>
      <exclusions>
        <exclusion><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId></exclusion>
      </exclusions>
    </dependency>
  </dependencies>
</project>
POM
  log "kafka: fetching org.apache.kafka:kafka_2.13:$v + kafka-tools and their runtime dependencies (Maven Central)"
  rm -rf "$home/libs.tmp"
  (cd "$home" && mvn -B -Dstyle.color=never dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$home/libs.tmp" >"$home/mvn.log" 2>&1) ||
    { tail -n 40 "$home/mvn.log" >&2; die "kafka: mvn dependency:copy-dependencies failed (log: $home/mvn.log)"; }
  [ -f "$home/libs.tmp/kafka_2.13-$v.jar" ] || die "kafka: kafka_2.13-$v.jar missing after mvn"
  rm -rf "$home/libs"
  mv "$home/libs.tmp" "$home/libs"
  ls "$home/libs" >"$home/libs/.complete"
  log "kafka: $v installed in $home/libs ($(ls "$home/libs" | grep -c '\.jar$') jars, $(du -sh "$home/libs" | cut -f1))"
}

# (No `| grep -q` on a command's output here: under pipefail the writer's SIGPIPE fails the test.)
ferretdb_version() { "$1" --version 2>/dev/null | sed -n 's/^version: //p'; }

install_ferretdb() {
  local v=$CHAT_FERRETDB_VERSION bin=$CHAT_SERVICES_CACHE/bin/ferretdb
  if [ -x "$bin" ] && [ "$(ferretdb_version "$bin")" = "$v" ]; then
    log "ferretdb: $v present at $bin"
    return
  fi
  command -v go >/dev/null || die "ferretdb: go is missing (FerretDB $v needs Go 1.24 or newer)"
  # A plain `go install .../cmd/ferretdb@$v` builds a binary that panics at start: the module
  # lacks the generated build/version/version.txt (its release builds write it from git). So:
  # take the module from the Go module proxy, add that file, build it.
  log "ferretdb: building github.com/FerretDB/FerretDB@$v ($(go version | cut -d' ' -f3)) from the Go module proxy"
  local mod src=$CHAT_SERVICES_CACHE/ferretdb-$v-src
  mod=$(go mod download -json "github.com/FerretDB/FerretDB@$v" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$mod" ] || die "ferretdb: go mod download github.com/FerretDB/FerretDB@$v failed"
  rm -rf "$src"
  cp -r "$mod" "$src"
  chmod -R u+w "$src"
  echo "$v" >"$src/build/version/version.txt"
  echo "chatd-test" >"$src/build/version/package.txt"
  mkdir -p "$CHAT_SERVICES_CACHE/bin"
  (cd "$src" && go build -trimpath -buildvcs=false -o "$bin.tmp" ./cmd/ferretdb) ||
    die "ferretdb: go build failed"
  [ "$(ferretdb_version "$bin.tmp")" = "$v" ] || die "ferretdb: the build does not report version $v"
  mv "$bin.tmp" "$bin"
  rm -rf "$src"
  log "ferretdb: $v installed at $bin"
}

for s in "${steps[@]}"; do
  t0=$(now_ms)
  case $s in
    apt) install_apt ;;
    kafka) install_kafka ;;
    ferretdb) install_ferretdb ;;
    *) die "unknown step $s (apt, kafka, ferretdb)" ;;
  esac
  log "$s: done in $(($(now_ms) - t0)) ms"
done
log "all done in $(($(now_ms) - t_all)) ms (cache: $CHAT_SERVICES_CACHE)"
