#!/usr/bin/env bash
# provision.sh sets up one host of the reelfs lab: it reads its role from the
# hosts file, installs what the role runs, and starts every daemon of it.
#
#   provision.sh [options] HOST
#
#   --hosts FILE       the lab's hosts file (default: hosts beside this script)
#   --bin PATH         reelfs binary to install (default: /vagrant-bin/reelfs)
#   --consul-bin PATH  consul binary (consul role; default: download 1.14.11)
#   --direct DIR       run the daemons as plain background processes with
#                      state, logs and pid files under DIR/HOST, instead of
#                      systemd units (the netns lab runs every host this way)
#   --start DAEMON     only (re)start one daemon of HOST (direct mode): the
#                      lab's nemesis restarts what it killed with this
#
# Extra flags per daemon come from $REELFS_META_FLAGS, $REELFS_CHUNK_FLAGS,
# $REELFS_HTTPD_FLAGS, $REELFS_MOUNT_FLAGS (split on spaces).
#
# Consul: one server agent on the consul host (-server -bootstrap-expect 1,
# with a data directory, so its KV outlives restarts); every daemon points
# --consul at the server's HTTP address. The server runs every health check.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
hosts=$here/hosts
bin=/vagrant-bin/reelfs
consul_bin=
direct=
only=
consul_version=1.14.11

die() { echo "provision: $*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
	case $1 in
	--hosts) hosts=$2; shift 2 ;;
	--bin) bin=$2; shift 2 ;;
	--consul-bin) consul_bin=$2; shift 2 ;;
	--direct) direct=$2; shift 2 ;;
	--start) only=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set /p' "$0" | sed 's/^# \{0,1\}//; /^set /d'; exit 0 ;;
	-*) die "unknown option $1" ;;
	*) break ;;
	esac
done
[[ $# -eq 1 ]] || die "usage: provision.sh [options] HOST"
host=$1
[[ -z $only || -n $direct ]] || die "--start needs --direct"

# The hosts file: name address role group; comments and blank lines skipped.
role='' addr='' group='' consul_addr=''
metas=()
while read -r name a r g; do
	[[ -z $name || $name == \#* ]] && continue
	case $r in
	meta) metas+=("$a:9400") ;;
	consul) consul_addr=$a:8500 ;;
	esac
	if [[ $name == "$host" ]]; then
		role=$r addr=$a group=$g
	fi
done <"$hosts"
[[ -n $role ]] || die "host $host is not in $hosts"
[[ -n $consul_addr ]] || die "no consul host in $hosts"
meta_list=$(IFS=,; echo "${metas[*]}")

if [[ -n $direct ]]; then
	state=$direct/$host
	reelfs=$bin
	consul=${consul_bin:-consul}
	mnt=$state/mnt
else
	state=/var/lib/reelfs
	reelfs=/usr/local/bin/reelfs
	consul=/usr/local/bin/consul
	mnt=/mnt/reelfs
fi

# cmd_of DAEMON prints the command line of one daemon, one word a line.
cmd_of() {
	local words=()
	case $1 in
	consul)
		words=("$consul" agent -server -bootstrap-expect 1 -node "$host"
			-bind "$addr" -client "$addr 127.0.0.1" -data-dir "$state/consul"
			-dns-port -1 -log-level warn)
		;;
	meta)
		# shellcheck disable=SC2206 # flags are words on purpose
		words=("$reelfs" meta --ha --consul "$consul_addr" --dir "$state/meta"
			--listen "$addr:9400" ${REELFS_META_FLAGS:-})
		;;
	chunk)
		# shellcheck disable=SC2206
		words=("$reelfs" chunk --dir "$state/chunk" --listen "$addr:9410"
			--group "$group" --meta "$meta_list" --consul "$consul_addr"
			--min-copies 2 ${REELFS_CHUNK_FLAGS:-})
		;;
	httpd)
		# shellcheck disable=SC2206
		words=("$reelfs" httpd --meta "$meta_list" --consul "$consul_addr"
			--listen "$addr:9480" ${REELFS_HTTPD_FLAGS:-})
		;;
	mount)
		# shellcheck disable=SC2206
		words=("$reelfs" mount "$mnt" --meta "$meta_list" ${REELFS_MOUNT_FLAGS:-})
		;;
	*) die "unknown daemon $1" ;;
	esac
	printf '%s\n' "${words[@]}"
}

case $role in
consul) daemons=(consul) ;;
meta) daemons=(meta) ;;
chunk) daemons=(chunk) ;;
client) daemons=(httpd mount) ;;
*) die "unknown role $role of $host" ;;
esac

install_binaries() {
	install -m 0755 "$bin" "$reelfs"
	if [[ $role == consul && ! -x $consul ]]; then
		if [[ -n $consul_bin ]]; then
			install -m 0755 "$consul_bin" "$consul"
		else
			local zip=consul_${consul_version}_linux_amd64.zip
			export DEBIAN_FRONTEND=noninteractive
			apt-get update -qq
			apt-get install -y -qq --no-install-recommends curl unzip ca-certificates >/dev/null
			curl -fsSL -o "/tmp/$zip" "https://releases.hashicorp.com/consul/$consul_version/$zip"
			unzip -o -q "/tmp/$zip" consul -d /usr/local/bin
		fi
	fi
	if [[ $role == client ]] && ! command -v fusermount3 >/dev/null; then
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends fuse3 >/dev/null
	fi
}

# systemd_quote WORD prints WORD as one word of a unit's ExecStart: bare
# when plain, else double-quoted with systemd's escapes ($ and % doubled).
systemd_quote() {
	local w=$1
	w=${w//%/%%}
	w=${w//\$/\$\$}
	if [[ $w =~ ^[A-Za-z0-9_./:,=@+-]+$ ]]; then
		printf '%s' "$w"
		return
	fi
	w=${w//\\/\\\\}
	w=${w//\"/\\\"}
	printf '"%s"' "$w"
}

# write_unit DAEMON writes and starts the systemd unit reelfs-DAEMON.
write_unit() {
	local d=$1 exec_start unit=/etc/systemd/system/reelfs-$1.service
	exec_start=$(cmd_of "$d" | while read -r w; do printf '%s ' "$(systemd_quote "$w")"; done)
	local after=network-online.target
	{
		echo "[Unit]"
		echo "Description=reelfs $d ($host, $addr)"
		echo "Wants=network-online.target"
		echo "After=$after"
		echo
		echo "[Service]"
		echo "ExecStart=${exec_start% }"
		if [[ $d == mount ]]; then
			# a killed mount leaves its mount point dead until unmounted
			echo "ExecStartPre=-/usr/bin/fusermount3 -u -z $mnt"
			echo "ExecStopPost=-/usr/bin/fusermount3 -u -z $mnt"
		fi
		echo "Restart=on-failure"
		echo "RestartSec=2"
		echo "KillSignal=SIGTERM"
		echo "TimeoutStopSec=30"
		echo "LimitNOFILE=65536"
		echo
		echo "[Install]"
		echo "WantedBy=multi-user.target"
	} >"$unit"
	systemctl daemon-reload
	systemctl enable --now "reelfs-$d.service"
}

# start_direct DAEMON starts one daemon in the background of this shell's
# network namespace, its output in DAEMON.log and its pid in DAEMON.pid.
start_direct() {
	local d=$1 words=() pid
	mapfile -t words < <(cmd_of "$d")
	# A zombie (Z) or a process being reaped (X, dead) has exited; the
	# lab's own check (lab/lab.go alive) reads both as not running.
	if [[ -f $state/$d.pid ]] && kill -0 "$(cat "$state/$d.pid")" 2>/dev/null &&
		! grep -Eq '^State:.*(zombie|dead)' "/proc/$(cat "$state/$d.pid")/status" 2>/dev/null; then
		die "$host: $d already runs (pid $(cat "$state/$d.pid"))"
	fi
	if [[ $d == mount ]]; then
		fusermount3 -u -z "$mnt" 2>/dev/null || true
	fi
	echo "=== $(date -u +%FT%TZ) start: ${words[*]}" >>"$state/$d.log"
	setsid "${words[@]}" >>"$state/$d.log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$state/$d.pid"
	echo "provision: $host: $d started (pid $pid)"
}

mkdir -p "$state"
[[ $role == client ]] && mkdir -p "$mnt"
if [[ -n $only ]]; then
	start_direct "$only"
	exit 0
fi
if [[ -n $direct ]]; then
	for d in "${daemons[@]}"; do start_direct "$d"; done
else
	install_binaries
	# reelfs status, ls, put, ... on any VM find the cluster by themselves
	printf 'export REELFS_META=%s\nexport CONSUL_HTTP_ADDR=%s\n' "$meta_list" "$consul_addr" >/etc/profile.d/reelfs.sh
	for d in "${daemons[@]}"; do write_unit "$d"; done
fi
echo "provision: $host ($role, $addr) up: ${daemons[*]}"
