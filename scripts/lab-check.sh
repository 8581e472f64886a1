#!/usr/bin/env bash
# Checks the lab's provisioning without booting anything: shellcheck of the
# provisioning scripts, and `vagrant validate` of vagrant/Vagrantfile.
# Vagrant (~1 GB with its Ruby) and shellcheck are installed here on demand
# when run as root, never by `make test`; without them and without root the
# check in question is skipped with a message saying so.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts=(vagrant/provision.sh scripts/lab-check.sh scripts/deps.sh scripts/consul.sh)

install_pkg() { # install_pkg COMMAND PACKAGE: 0 when COMMAND is there after
	command -v "$1" >/dev/null 2>&1 && return 0
	if [[ $(id -u) -ne 0 ]]; then
		echo "lab-check: $1 is not installed and this is not root; install $2 to check with it" >&2
		return 1
	fi
	echo "lab-check: installing $2" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "$2" >/dev/null
}

failed=0
if install_pkg shellcheck shellcheck; then
	shellcheck "${scripts[@]}" && echo "lab-check: shellcheck ok (${scripts[*]})" || failed=1
else
	echo "lab-check: SKIPPED shellcheck"
fi

# The systemd side of provision.sh, for every host of vagrant/hosts: in a
# mount namespace of its own (tmpfs over the paths it writes, a systemctl
# that only echoes), then systemd-analyze verify of the units it wrote.
check_units() {
	local fake
	fake=$(mktemp -d /tmp/reelfs-lab-check-XXXXXX)
	printf '#!/bin/sh\necho "systemctl $*"\n' >"$fake/systemctl"
	chmod +x "$fake/systemctl"
	# shellcheck disable=SC2016 # expanded by the inner shell
	unshare -m bash -euc '
		for d in /etc/systemd/system /usr/local/bin /etc/profile.d /var/lib; do
			mount -t tmpfs tmpfs "$d"
		done
		mkdir -p /mnt/reelfs
		while read -r name _; do
			[[ -z $name || $name == \#* ]] && continue
			PATH=$1:$PATH vagrant/provision.sh --hosts vagrant/hosts --bin bin/reelfs --consul-bin "$2" "$name" >/dev/null
			# each VM has its own /etc/systemd/system: keep them apart
			mkdir -p "$1/units/$name"
			mv /etc/systemd/system/reelfs-*.service "$1/units/$name/"
		done <vagrant/hosts
		units=("$1"/units/*/reelfs-*.service)
		[[ ${#units[@]} -eq 12 ]] || { echo "lab-check: ${#units[@]} units written, want 12" >&2; exit 1; }
		if command -v systemd-analyze >/dev/null; then
			for u in "${units[@]}"; do
				cp "$u" /etc/systemd/system/
				# warnings (an unknown escape) exit 0: any output fails
				out=$(systemd-analyze verify "/etc/systemd/system/${u##*/}" 2>&1) || true
				[[ -z $out ]] || { echo "lab-check: $u: $out" >&2; exit 1; }
				rm "/etc/systemd/system/${u##*/}"
			done
		fi
	' check "$fake" "$(command -v bin/consul || echo bin/reelfs)"
	local rc=$?
	rm -rf "$fake"
	return $rc
}

if [[ ! -x bin/reelfs ]]; then
	echo "lab-check: bin/reelfs missing (make build)" >&2
	exit 1
fi
if [[ $(id -u) -eq 0 ]] && command -v unshare >/dev/null; then
	if check_units; then
		echo "lab-check: provision.sh writes 12 systemd units that systemd-analyze verifies"
	else
		failed=1
	fi
else
	echo "lab-check: SKIPPED the systemd units (needs root and unshare)"
fi
if install_pkg vagrant vagrant; then
	if (cd vagrant && VAGRANT_CHECKPOINT_DISABLE=1 vagrant validate); then
		echo "lab-check: vagrant validate ok"
	else
		failed=1
	fi
else
	echo "lab-check: SKIPPED vagrant validate (vagrant not installed)"
fi
exit "$failed"
