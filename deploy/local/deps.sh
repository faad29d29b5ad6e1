#!/usr/bin/env bash
# Installs what parley needs to build, lint and test on Debian 12 and fetches the
# Apache Kafka broker jars from Maven Central. Safe to run again: it only installs
# what is missing and prints nothing when everything is already there.
set -euo pipefail

KAFKA_VERSION=3.9.1

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${PARLEY_CACHE:-$HOME/.cache/parley}

packages=(
	build-essential pkg-config
	libwebsockets-dev libev-dev libnng-dev libprotobuf-c-dev protobuf-c-compiler
	protobuf-compiler librdkafka-dev libpq-dev libcurl4-openssl-dev libssl-dev
	postgresql-15
	clang-14 clang-tidy-14 clang-format-14 cppcheck
	libclang-rt-14-dev
	curl procps iproute2 python3 openssl
	chromium # the web demo's browser tests (playwright-core drives it)
)

# A JDK and Maven may come from elsewhere (this machine has both in /usr/bin);
# only ask Debian for them when the commands are missing.
command -v java >/dev/null || packages+=(default-jre-headless)
command -v mvn >/dev/null || packages+=(maven)
# npm fetches buf for `make proto-lint` (part of `make test`).
command -v npm >/dev/null || packages+=(npm)

is_installed() {
	[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

install_debian_packages() {
	local missing=() p
	for p in "${packages[@]}"; do
		is_installed "$p" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0

	echo "deps: installing ${missing[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

# The jars go to $cache/kafka-VERSION/libs; a marker holding the pom's checksum
# says the copy is complete and matches the pom. $cache/kafka links to the
# pinned version so that kafka.sh does not need to know it.
install_kafka_jars() {
	local pom="$root/deploy/kafka/pom.xml"
	local dest="$cache/kafka-$KAFKA_VERSION"
	local want
	want=$(sha256sum "$pom" | cut -d' ' -f1)

	if [ "$(cat "$dest/complete" 2>/dev/null)" != "$want" ]; then
		echo "deps: fetching Apache Kafka $KAFKA_VERSION jars to $dest" >&2
		rm -rf "$dest"
		mkdir -p "$dest"
		# Maven 3.8 prints stray colour codes even with -q -B: keep its
		# output in a file and show it only when something went wrong.
		if ! mvn -q -B -f "$pom" -Dkafka.version="$KAFKA_VERSION" \
			dependency:copy-dependencies -DoutputDirectory="$dest/libs.tmp" \
			>"$dest/mvn.log" 2>&1; then
			cat "$dest/mvn.log" >&2
			exit 1
		fi
		mv "$dest/libs.tmp" "$dest/libs"
		echo "$want" >"$dest/complete"
	fi
	ln -sfn "kafka-$KAFKA_VERSION" "$cache/kafka"
}

install_debian_packages
install_kafka_jars
