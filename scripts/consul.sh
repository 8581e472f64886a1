#!/usr/bin/env bash
# Builds Consul once into a cache outside the clone and leaves bin/consul
# pointing at it. Consul is not packaged for Debian and no prebuilt binary can
# be downloaded here, so it is built from the Go module proxy in a scratch
# module. v1.14.11 (MPL-2.0) is the last line whose modules all resolve: later
# lines need modules the proxy refuses. The build takes 10+ minutes on a busy
# 2-core machine; every later run only checks the cached binary and relinks.
#
# Usage: scripts/consul.sh          build if needed, link bin/consul
#        scripts/consul.sh --path   same, then print the binary's path
#
# Environment: REELFS_CACHE_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/reelfs)
# chooses the cache; tests look for bin/consul or $REELFS_CONSUL_BIN.
set -euo pipefail

version=1.14.11
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${REELFS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/reelfs}/consul-$version
bin=$cache/consul
mkdir -p "$cache"

# cached reports whether the cached binary exists and is the wanted version.
cached() {
	[[ -x $bin ]] && "$bin" version 2>/dev/null | head -1 | grep -q "^Consul v$version"
}

if ! cached; then
	# One build at a time: make, a test and a second clone may all ask at once.
	exec 9>"$cache/.lock"
	flock 9
	if ! cached; then
		command -v go >/dev/null || {
			echo "reelfs: building Consul needs the go command on PATH" >&2
			exit 1
		}
		echo "reelfs: building Consul v$version into $cache (10+ minutes, once)" >&2
		start=$(date +%s)
		work=$(mktemp -d "$cache/build.XXXXXX")
		trap 'rm -rf "$work"' EXIT
		log=$cache/build.log
		# hashicorp's modules are not all in the checksum database, hence
		# GONOSUMDB; -mod=mod lets go build add the module's own requirements.
		if ! (
			cd "$work"
			export GONOSUMDB=github.com/hashicorp GOFLAGS="-mod=mod -buildvcs=false"
			go mod init reelfs.local/consulbuild
			nice -n 19 go get "github.com/hashicorp/consul@v$version"
			nice -n 19 go build -trimpath -o "$work/consul" github.com/hashicorp/consul
		) >"$log" 2>&1; then
			echo "reelfs: building Consul v$version failed; the last lines of $log:" >&2
			tail -n 25 "$log" >&2
			exit 1
		fi
		"$work/consul" version >/dev/null 2>&1 || {
			echo "reelfs: the Consul binary built in $work does not run; see $log" >&2
			exit 1
		}
		# Rename within one file system: a reader sees the old binary or the
		# whole new one, never a half-written file.
		mv -f "$work/consul" "$bin"
		echo "reelfs: built Consul v$version in $(($(date +%s) - start)) s: $bin" >&2
	fi
	flock -u 9
fi

mkdir -p "$root/bin"
if [[ $(readlink "$root/bin/consul" 2>/dev/null) != "$bin" ]]; then
	ln -sfn "$bin" "$root/bin/consul.tmp.$$"
	mv -fT "$root/bin/consul.tmp.$$" "$root/bin/consul"
fi
if [[ ${1:-} == "--path" ]]; then
	echo "$bin"
fi
