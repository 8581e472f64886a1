#!/usr/bin/env bash
# Installs what reelfs's tests and benchmarks need on a fresh Debian machine:
# fuse3 (the mount), ffmpeg (media tests), chromium (browser playback test),
# nginx + wrk (HTTP baseline), rsync/sqlite3/attr (POSIX tests). Only what
# is missing is installed, so a second run costs nothing.
set -euo pipefail

want=()
need() { command -v "$1" >/dev/null 2>&1 || want+=("$2"); }
need fusermount3 fuse3
need ffmpeg ffmpeg
need ffprobe ffmpeg
need rsync rsync
need sqlite3 sqlite3
need setfattr attr
if [[ "${1:-}" != "--run-only" ]]; then
	need chromium chromium
	need nginx nginx-light
	need wrk wrk
fi
[[ ${#want[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
	echo "reelfs: missing packages: ${want[*]}; install them as root: apt-get install ${want[*]}" >&2
	exit 1
fi
echo "reelfs: installing ${want[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
