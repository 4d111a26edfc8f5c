# scripts/lib/nspawn.sh: a fresh Debian 12 (bookworm) machine booted with
# systemd-nspawn, for the checks run by hand as root (scripts/systemd-check,
# scripts/install-check). Sourced, with NAME set to the check's name:
#
#   nspawn_host_tools        debootstrap and systemd-nspawn, installed if missing
#   nspawn_base              the debootstrapped root in $BASE, made once
#   nspawn_fresh             this run's copy of it in $M
#   nspawn_boot              boots $M (its own network namespace, loopback only)
#   X CMD...                 runs CMD inside the machine as root
#   prop UNIT PROPERTY       systemctl show -p PROPERTY --value UNIT
#   cursor, log_since C      the journal from cursor C on
#   say, pass, fail, die     the output; fail counts into $FAILS
#
# Downloads and the root are kept under $CACHE (POSTERN_SYSTEMD_CACHE,
# default /var/tmp/postern-systemd; about 800 MB): debootstrap takes 2 to
# 4 minutes the first time. The machine is powered off at exit, unless
# KEEP=1; its journal is left in $CACHE/journal-$NAME.txt.

CACHE=${POSTERN_SYSTEMD_CACHE:-/var/tmp/postern-systemd}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BASE=$CACHE/base          # the debootstrapped root, kept between runs
M=$CACHE/machine-$NAME    # this run's copy, booted
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
FAILS=0
NSPAWN=
LEADER=

say() { printf '\n== %s\n' "$*"; }
pass() { printf 'PASS %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*"; FAILS=$((FAILS + 1)); }
die() { printf 'FATAL %s\n' "$*"; exit 1; }

# X runs a command inside the booted machine, as root, in all its
# namespaces.
X() {
	nsenter -t "$LEADER" -a -r -w env -i \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		LANG=C.UTF-8 SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}
prop() { X systemctl show -p "$2" --value "$1"; }
# since: a journal cursor to read the log from (journalctl --after-cursor).
cursor() { X journalctl -n 0 --show-cursor -q | sed -n 's/^-- cursor: //p'; }
log_since() { X journalctl --no-pager -o short-precise --after-cursor="$1" "${@:2}"; }

nspawn_cleanup() {
	local rc=$?
	if [ -n "$LEADER" ]; then
		X journalctl --no-pager -o short-precise > "$CACHE/journal-$NAME.txt" 2>&1
	fi
	if [ -n "$NSPAWN" ] && [ "${KEEP:-0}" != 1 ]; then
		[ -n "$LEADER" ] && X systemctl poweroff --no-block > /dev/null 2>&1
		for _ in $(seq 60); do kill -0 "$NSPAWN" 2> /dev/null || break; sleep 0.5; done
		kill -0 "$NSPAWN" 2> /dev/null && kill -KILL "$NSPAWN"
		wait "$NSPAWN" 2> /dev/null
	elif [ -n "$NSPAWN" ]; then
		echo "KEEP=1: the machine runs on; nspawn pid $NSPAWN, leader $LEADER"
	fi
	exit $rc
}
trap nspawn_cleanup EXIT

nspawn_host_tools() {
	[ "$(id -u)" = 0 ] || die "run as root (debootstrap, systemd-nspawn, nsenter)"
	mkdir -p "$CACHE/debs"
	say "host tools"
	local need=()
	command -v debootstrap > /dev/null || need+=(debootstrap)
	command -v systemd-nspawn > /dev/null || need+=(systemd-container)
	if [ ${#need[@]} -gt 0 ]; then
		apt-get update -q > /dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" > "$CACHE/apt.log" 2>&1 ||
			die "apt-get install ${need[*]} failed: see $CACHE/apt.log"
	fi
	command -v go > /dev/null || die "go not found"
	echo "debootstrap $(dpkg-query -W -f '${Version}' debootstrap 2> /dev/null), $(systemd-nspawn --version | head -1)"
}

nspawn_base() {
	say "Debian bookworm root in $BASE"
	if [ ! -e "$BASE/.postern-base-complete" ]; then
		rm -rf "$BASE.tmp"
		# python3 is the SMTP client (smtplib). swaks is left out: debootstrap
		# cannot resolve libnet-ssleay-perl's virtual dependency.
		debootstrap --variant=minbase --cache-dir="$CACHE/debs" \
			--include=systemd,systemd-sysv,dbus,iproute2,procps,python3,openssl,ca-certificates,adduser \
			bookworm "$BASE.tmp" "$MIRROR" > "$CACHE/debootstrap.log" 2>&1 ||
			die "debootstrap failed: see $CACHE/debootstrap.log and $BASE.tmp/debootstrap/debootstrap.log"
		rm -rf "$BASE" && mv "$BASE.tmp" "$BASE" && touch "$BASE/.postern-base-complete"
	fi
	echo "root ready ($(du -sh "$BASE" | cut -f1))"
}

nspawn_fresh() {
	say "fresh machine in $M"
	rm -rf "$M" && cp -a "$BASE" "$M" || die "copy of the root failed"
	echo "postern-$NAME" > "$M/etc/hostname"
	mkdir -p "$M/root/check"
	cp "$REPO/scripts/lib/smtpclient.py" "$M/root/check/client.py"
}

nspawn_boot() {
	say "boot with systemd-nspawn"
	# --register=no --keep-unit: no machined or systemd on the host needed.
	systemd-nspawn -q -b -D "$M" -M "postern-$NAME" --private-network \
		--register=no --keep-unit --console=read-only > "$CACHE/console-$NAME.log" 2>&1 &
	NSPAWN=$!
	# The container's PID 1 is the child of systemd-nspawn that runs systemd
	# (an intermediate child comes and goes before it).
	for _ in $(seq 100); do
		LEADER=$(ps -o pid=,comm= --ppid "$NSPAWN" 2> /dev/null | awk '$2 == "systemd" {print $1; exit}')
		[ -n "$LEADER" ] && break
		kill -0 "$NSPAWN" 2> /dev/null || break
		sleep 0.2
	done
	[ -n "$LEADER" ] || { cat "$CACHE/console-$NAME.log"; LEADER=; die "systemd-nspawn did not start a container"; }
	local state=
	for _ in $(seq 120); do
		state=$(X systemctl is-system-running 2> /dev/null)
		case $state in running | degraded) break ;; esac
		sleep 0.5
	done
	case $state in
	running | degraded)
		case $(X stat -fc %T /sys/fs/cgroup) in cgroup2fs) CGROUP="cgroup v2" ;; *) CGROUP="cgroup v1" ;; esac
		echo "booted: $(X systemctl --version | head -1), system $state, $CGROUP, leader pid $LEADER"
		;;
	*) cat "$CACHE/console-$NAME.log"; die "the machine did not boot (is-system-running: $state)" ;;
	esac
	SYSTEMD_VERSION=$(X systemctl --version | head -1)
}
