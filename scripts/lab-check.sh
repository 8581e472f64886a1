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

if [[ ! -x bin/reelfs ]]; then
	echo "lab-check: bin/reelfs missing (make build)" >&2
	exit 1
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
