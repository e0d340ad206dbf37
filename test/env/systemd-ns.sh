#!/usr/bin/env bash
# test/env/systemd-ns.sh - a real systemd (PID 1 of namespaces of its own), for tests that need
# systemd's D-Bus API (transient units, slices, logind) on a machine without systemd as PID 1.
#
#   test/env/systemd-ns.sh up DIR     install systemd, dbus, util-linux with apt when missing;
#                                     start systemd in new PID, mount, UTS, IPC, net and cgroup
#                                     namespaces, wait until it has booted (dbus, journald and
#                                     logind running). The LAST line of stdout is the path of the
#                                     system bus socket, DIR/run/dbus/system_bus_socket (use it as
#                                     DBUS_SYSTEM_BUS_ADDRESS=unix:path=<it>); systemd's own private
#                                     socket is DIR/run/systemd/private. Progress goes to stderr.
#                                     A no-op when already running.
#   test/env/systemd-ns.sh down DIR   kill that systemd and everything under it, remove its test
#                                     cgroups. Keeps DIR/systemd.log. Quiet when nothing runs.
#   test/env/systemd-ns.sh status DIR exit 0 if it runs, 3 if not.
#
# How (root only; cgroup v1, as on the test machines):
#   - a test cgroup is made in every mounted v1 hierarchy (name=systemd included), as a child of
#     the cgroup the caller is in, and the launcher enters it; DIR/cgroups lists them
#     ("<controller> <absolute path under /sys/fs/cgroup>"), so a test can read, from the host,
#     the files of the cgroups systemd makes (systemd's "/foo.slice" is <path>/foo.slice);
#   - unshare --fork --pid --mount --uts --ipc --net --cgroup; inside: an overlay of / with a tmpfs
#     upper layer (systemd may write /etc, /var: nothing reaches the host), fresh proc and sysfs,
#     the v1 hierarchies mounted afresh on a tmpfs /sys/fs/cgroup (so they are rooted at the test
#     cgroup), a private tmpfs /dev (the host's null, zero, random, ... bound in) and /tmp (without
#     it, tmpfiles cleanup would walk the host's /tmp through the overlay), DIR/run bound as /run
#     (so the bus sockets are reachable from the host), units that would touch the host or are
#     noise masked (getty, timers, networkd, sysctl, binfmt, kernel mounts, containerd, ...),
#     pivot_root, then exec /lib/systemd/systemd --system systemd.unified_cgroup_hierarchy=0.
#   - dbus, journald and logind are left alone: they come up.
#
# DIR (created if missing) holds: run/ (the namespace's /run), pid (systemd's PID on the host),
# cgroups, systemd.log (systemd's console), root/ and ovl/ (mount points, empty on the host).
set -euo pipefail

cmd=${1:-}
DIR=${2:-}
if [[ -z $cmd || -z $DIR ]]; then
	echo "usage: $0 up|down|status DIR" >&2
	exit 2
fi
if [[ $(id -u) != 0 ]]; then
	echo "$0: must run as root" >&2
	exit 1
fi
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
# One test cgroup name per DIR, so two instances never share one.
CG=berth-systemd-ns-$(printf %s "$DIR" | md5sum | cut -c1-10)

running() {
	[[ -f $DIR/pid ]] || return 1
	local pid
	pid=$(cat "$DIR/pid")
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && [[ $(cat /proc/"$pid"/comm 2>/dev/null) == systemd ]]
}

# v1 hierarchies: "<mount point> <cgroup of this process in it>" for each.
hierarchies() {
	local line id ctrls path mnt opts
	while IFS=: read -r id ctrls path; do
		[[ $id == 0 ]] && continue # the unified (v2) hierarchy
		mnt=""
		while read -r _ m fstype opts _; do
			[[ $fstype == cgroup ]] || continue
			for o in ${opts//,/ }; do
				if [[ $o == "${ctrls%%,*}" ]]; then mnt=$m; fi
			done
		done </proc/mounts
		[[ -n $mnt ]] && echo "$mnt ${path%/}"
	done </proc/self/cgroup
}

make_cgroups() {
	: >"$DIR/cgroups"
	local mnt path cg
	while read -r mnt path; do
		cg=$mnt$path/$CG
		mkdir -p "$cg"
		if [[ -f $cg/cpuset.cpus ]]; then
			cat "$(dirname "$cg")/cpuset.cpus" >"$cg/cpuset.cpus"
			cat "$(dirname "$cg")/cpuset.mems" >"$cg/cpuset.mems"
		fi
		echo "$(basename "$mnt") $cg" >>"$DIR/cgroups"
	done < <(hierarchies)
}

remove_cgroups() {
	[[ -f $DIR/cgroups ]] || return 0
	local ctrl cg left=0 try
	while read -r ctrl cg; do
		# Innermost first; every process is gone once the namespace's PID 1 died, but the kernel
		# may still be reaping them: retry for up to 5 s.
		for try in $(seq 50); do
			[[ -d $cg ]] || break
			find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
			[[ -d $cg ]] || break
			sleep 0.1
		done
		if [[ -d $cg ]]; then
			echo "systemd-ns: cgroup $cg is still there" >&2
			left=1
		fi
	done <"$DIR/cgroups"
	# Keep the list while something is left, so that another down can finish the job.
	((left)) || rm -f "$DIR/cgroups"
}

# inner runs as PID 1 of the new namespaces and ends in exec systemd.
inner() {
	set -euo pipefail
	local root=$DIR/root ovl=$DIR/ovl
	mount --make-rprivate /
	mkdir -p "$root" "$ovl"
	mount -t tmpfs -o mode=755 berth-systemd-ns "$ovl"
	mkdir -p "$ovl/upper" "$ovl/work"
	mount -t overlay overlay -o "lowerdir=/,upperdir=$ovl/upper,workdir=$ovl/work" "$root"
	mount -t proc proc "$root/proc"
	mount -t sysfs sysfs "$root/sys"
	mount -t tmpfs -o mode=755 cgroup "$root/sys/fs/cgroup"
	local ctrl cg
	while read -r ctrl cg; do
		mkdir -p "$root/sys/fs/cgroup/$ctrl"
		if [[ $ctrl == systemd ]]; then
			mount -t cgroup -o none,name=systemd cgroup "$root/sys/fs/cgroup/systemd"
		else
			mount -t cgroup -o "$ctrl" cgroup "$root/sys/fs/cgroup/$ctrl"
		fi
	done <"$DIR/cgroups"
	mount -t tmpfs -o mode=755,nosuid dev "$root/dev"
	local d
	for d in null zero full random urandom tty; do
		touch "$root/dev/$d"
		mount --bind "/dev/$d" "$root/dev/$d"
	done
	mkdir -p "$root/dev/pts" "$root/dev/shm"
	mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
	ln -s pts/ptmx "$root/dev/ptmx"
	mount -t tmpfs -o mode=1777 shm "$root/dev/shm"
	mount -t tmpfs -o mode=1777 tmp "$root/tmp"
	mkdir -p "$DIR/run"
	mount --bind "$DIR/run" "$root/run"
	# Mask what touches the host (kernel settings, mounts, devices, the host's services) or is
	# noise; dbus, journald and logind stay.
	local etc=$root/etc/systemd/system u
	for u in getty@tty1.service console-getty.service getty.target serial-getty@.service \
		containerd.service postgresql.service nftables.service cni-dhcp.socket cni-dhcp.service \
		packagekit.service polkit.service e2scrub_reap.service remote-fs.target \
		systemd-pstore.service systemd-timesyncd.service systemd-networkd.service systemd-networkd.socket \
		systemd-networkd-wait-online.service systemd-network-generator.service \
		apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer \
		man-db.timer systemd-tmpfiles-clean.timer systemd-tmpfiles-clean.service \
		dev-hugepages.mount dev-mqueue.mount proc-sys-fs-binfmt_misc.automount \
		proc-sys-fs-binfmt_misc.mount sys-fs-fuse-connections.mount sys-kernel-config.mount \
		sys-kernel-debug.mount sys-kernel-tracing.mount systemd-binfmt.service \
		kmod-static-nodes.service systemd-modules-load.service systemd-sysctl.service procps.service \
		systemd-random-seed.service systemd-firstboot.service systemd-machine-id-commit.service \
		systemd-repart.service systemd-pcrphase.service systemd-pcrphase-sysinit.service \
		systemd-remount-fs.service systemd-fsck-root.service hwclock.service quotaon.service \
		systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
		systemd-udev-trigger.service systemd-journald-audit.socket cryptsetup.target \
		integritysetup.target veritysetup.target systemd-ask-password-console.path \
		systemd-ask-password-wall.path rc-local.service; do
		ln -sf /dev/null "$etc/$u"
	done
	rm -rf "$etc/getty.target.wants" "$etc/timers.target.wants"
	echo berth-systemd-ns >"$root/etc/hostname"
	hostname berth-systemd-ns
	cd "$root"
	mkdir -p .oldroot
	pivot_root . .oldroot
	umount -l /.oldroot
	rmdir /.oldroot
	export container=berth-systemd-ns
	exec /lib/systemd/systemd --system systemd.unified_cgroup_hierarchy=0 systemd.show_status=0 \
		systemd.log_target=console
}

# install_missing installs systemd, dbus and util-linux (unshare, nsenter) with apt when missing.
install_missing() {
	local missing=()
	[[ -x /lib/systemd/systemd ]] || missing+=(systemd)
	command -v dbus-daemon >/dev/null || missing+=(dbus)
	command -v unshare >/dev/null && command -v nsenter >/dev/null || missing+=(util-linux)
	if ((${#missing[@]})); then
		echo "systemd-ns: installing ${missing[*]} with apt-get" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q >&2
		apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
	fi
}

case $cmd in
up)
	install_missing
	if running; then
		echo "systemd-ns: already running (pid $(cat "$DIR/pid"))" >&2
		echo "$DIR/run/dbus/system_bus_socket"
		exit 0
	fi
	remove_cgroups
	mkdir -p "$DIR/run"
	rm -rf "${DIR:?}/run/"* "$DIR/pid"
	make_cgroups
	echo "systemd-ns: starting systemd (cgroup $CG)" >&2
	export DIR
	export -f inner
	# The launcher enters the test cgroups, then becomes the namespaces' PID 1 (unshare --fork
	# waits for it), which execs systemd.
	setsid bash -c '
		while read -r ctrl cg; do echo $$ >"$cg/cgroup.procs"; done <"$DIR/cgroups"
		exec unshare --fork --pid --mount --uts --ipc --net --cgroup --kill-child bash -c inner
	' </dev/null >"$DIR/systemd.log" 2>&1 &
	launcher=$!
	pid=""
	for _ in $(seq 100); do
		pid=$(pgrep -P "$launcher" 2>/dev/null | head -n1 || true)
		[[ -n $pid && $(cat /proc/"$pid"/comm 2>/dev/null) == systemd ]] && break
		if ! kill -0 "$launcher" 2>/dev/null; then
			echo "systemd-ns: the launcher exited; see $DIR/systemd.log:" >&2
			tail -n 20 "$DIR/systemd.log" >&2
			remove_cgroups
			exit 1
		fi
		pid=""
		sleep 0.1
	done
	if [[ -z $pid ]]; then
		echo "systemd-ns: systemd did not start in 10 s; see $DIR/systemd.log" >&2
		kill -KILL "$launcher" 2>/dev/null || true
		remove_cgroups
		exit 1
	fi
	echo "$pid" >"$DIR/pid"
	# Booted: the system bus answers and dbus, journald and logind run.
	state=""
	for _ in $(seq 300); do
		state=$(nsenter -t "$pid" -a systemctl is-system-running 2>/dev/null || true)
		if [[ $state == running || $state == degraded ]] && [[ -S $DIR/run/dbus/system_bus_socket ]] &&
			nsenter -t "$pid" -a systemctl is-active -q dbus.service systemd-journald.service systemd-logind.service; then
			break
		fi
		state=""
		sleep 0.1
	done
	if [[ -z $state ]]; then
		echo "systemd-ns: systemd did not boot in 30 s; see $DIR/systemd.log" >&2
		nsenter -t "$pid" -a systemctl --no-pager list-units --failed >&2 || true
		exit 1
	fi
	if [[ $state == degraded ]]; then
		echo "systemd-ns: booted degraded; failed units:" >&2
		nsenter -t "$pid" -a systemctl --no-pager --plain --no-legend list-units --failed >&2 || true
	fi
	echo "systemd-ns: systemd $pid is $state; private socket $DIR/run/systemd/private" >&2
	echo "$DIR/run/dbus/system_bus_socket"
	;;
down)
	if running; then
		pid=$(cat "$DIR/pid")
		kill -KILL "$pid" 2>/dev/null || true # PID 1 of its namespace: everything in it dies too
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
	rm -f "$DIR/pid"
	remove_cgroups
	rm -rf "${DIR:?}/run"
	;;
status)
	if running; then
		echo "systemd-ns: running (pid $(cat "$DIR/pid"))"
		exit 0
	fi
	echo "systemd-ns: not running"
	exit 3
	;;
*)
	echo "usage: $0 up|down|status DIR" >&2
	exit 2
	;;
esac
