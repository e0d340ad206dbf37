#!/usr/bin/env bash
# test/env/runtime.sh - a private containerd with the CRI plugin, for Berth's tests.
#
#   test/env/runtime.sh up      install what is missing (apt), build the test images, start
#                               containerd, import the images, wait until the CRI is ready.
#                               The LAST line of stdout is
#                                 CONTAINER_RUNTIME_ENDPOINT=unix://<socket>
#                               (progress goes to stderr). A no-op when already running.
#   test/env/runtime.sh down    remove all pods and containers, stop containerd and its shims,
#                               undo mounts, network namespaces, the CNI bridge, IPAM state,
#                               iptables rules and cgroups. Quiet when nothing runs.
#   test/env/runtime.sh status  print whether it runs; exit 0 if it does, 3 if not.
#
# Must run as root. It never uses /etc/containerd nor the system containerd service.
#
# Environment (all optional):
#   BERTH_RUNTIME_DIR        folder owned by this script: config, log, pid file, containerd
#                            root, CNI config, build cache.   default /var/lib/berth-test/runtime
#   BERTH_RUNTIME_RUN_DIR    volatile folder: containerd state (task bundles, rootfs mounts,
#                            network namespaces), runc root.  default /run/berth-test/containerd
#   BERTH_RUNTIME_SOCKET     containerd's gRPC socket.     default $BERTH_RUNTIME_RUN_DIR/containerd.sock
#   BERTH_CNI_NETWORK        CNI network name.             default berth-test
#   BERTH_CNI_BRIDGE         bridge interface (<= 15 chars). default berth-cni0
#   BERTH_CNI_SUBNET         pod subnet (host-local IPAM). default 10.244.77.0/24
#   BERTH_CNI_BIN_DIR        CNI plugin binaries.          default /usr/lib/cni
#   BERTH_RUNTIME_LOG_LEVEL  containerd log level.         default info
#   BERTH_BUSYBOX            static busybox binary for localhost/busybox:latest. default /bin/busybox
#   GO                       go command that builds the helpers (only when not cached). default go
# A second, concurrent environment needs its own DIR, RUN_DIR, NETWORK, BRIDGE and SUBNET.
#
# Images (built here without a registry, imported into containerd's k8s.io namespace):
#   localhost/pause:3.9       test/env/pause (static Go), entrypoint /pause; the sandbox image.
#   localhost/busybox:latest  Debian's static busybox with its applet links, /etc/passwd, /etc/group, /tmp,
#                             and /bin/grpchealth (test/env/grpchealth: a gRPC health server for probe tests).
set -euo pipefail

STATE=${BERTH_RUNTIME_DIR:-/var/lib/berth-test/runtime}
RUN_DIR=${BERTH_RUNTIME_RUN_DIR:-/run/berth-test/containerd}
SOCK=${BERTH_RUNTIME_SOCKET:-$RUN_DIR/containerd.sock}
NET=${BERTH_CNI_NETWORK:-berth-test}
BRIDGE=${BERTH_CNI_BRIDGE:-berth-cni0}
SUBNET=${BERTH_CNI_SUBNET:-10.244.77.0/24}
CNI_BIN=${BERTH_CNI_BIN_DIR:-/usr/lib/cni}
LOG_LEVEL=${BERTH_RUNTIME_LOG_LEVEL:-info}
BUSYBOX=${BERTH_BUSYBOX:-/bin/busybox}
GO=${GO:-go}

ENDPOINT="unix://$SOCK"
CONFIG=$STATE/containerd.toml
LOG=$STATE/containerd.log
PIDFILE=$STATE/containerd.pid
CNI_CONF_DIR=$STATE/cni/net.d
ROOT=$STATE/root
CACHE=$STATE/cache
CTRD_STATE=$RUN_DIR/state
RUNC_ROOT=$RUN_DIR/runc

PAUSE_IMAGE=localhost/pause:3.9
BUSYBOX_IMAGE=localhost/busybox:latest
APT_PACKAGES=(containerd runc containernetworking-plugins busybox-static iproute2 iptables)

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}

say() { printf 'runtime.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
now_ms() { local t=${EPOCHREALTIME//[!0-9]/}; echo $((10#$t / 1000)); }

ctr_() { ctr --address "$SOCK" --connect-timeout 2s "$@"; }
answering() { [[ -S $SOCK ]] && ctr_ version >/dev/null 2>&1; }

# alive PID: the process exists and is not a zombie (a child of ours that exited stays one).
alive() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	[[ ${st%% *} != [ZX] ]]
}

# our_pid prints the pid of the containerd this script started, if it is alive.
our_pid() {
	local pid
	[[ -f $PIDFILE ]] || return 1
	pid=$(<"$PIDFILE")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[[ -r /proc/$pid/cmdline ]] || return 1
	tr '\0' ' ' </proc/"$pid"/cmdline | grep -qF -- "--config $CONFIG" || return 1
	echo "$pid"
}

check_paths() {
	# Refuse settings that would make `down` remove or unmount someone else's files.
	local p
	for p in "$STATE" "$RUN_DIR"; do
		[[ $p == /* && $p != */ && ${#p} -ge 8 && $p != *..* ]] ||
			die "unsafe folder \"$p\": give an absolute path of your own (>= 8 chars, no trailing /)"
	done
	((${#BRIDGE} <= 15)) || die "BERTH_CNI_BRIDGE \"$BRIDGE\" is longer than 15 characters"
	# containerd also listens on $SOCK.ttrpc and refuses unix socket paths over 104 bytes.
	((${#SOCK} + 6 <= 104)) || die "socket path $SOCK is too long (containerd allows 98 bytes)"
	[[ $SOCK == /* ]] || die "BERTH_RUNTIME_SOCKET must be an absolute path"
}

lock() {
	mkdir -p "$STATE"
	exec 9>"$STATE/.lock"
	flock -w 120 9 || die "another runtime.sh holds $STATE/.lock"
}

# ---------------------------------------------------------------------------------------------
# packages

ensure_packages() {
	local missing=() p
	if command -v dpkg-query >/dev/null; then
		for p in "${APT_PACKAGES[@]}"; do
			[[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || missing+=("$p")
		done
	fi
	if ((${#missing[@]})); then
		say "installing ${missing[*]} with apt-get"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q >&2
		apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
	fi
	for p in containerd containerd-shim-runc-v2 ctr runc ip iptables flock setsid; do
		command -v "$p" >/dev/null || die "$p not found in PATH"
	done
	for p in bridge host-local portmap loopback; do
		[[ -x $CNI_BIN/$p ]] || die "CNI plugin $CNI_BIN/$p not found"
	done
	[[ -x $BUSYBOX ]] || die "$BUSYBOX not found (package busybox-static)"
}

# ---------------------------------------------------------------------------------------------
# build cache: $CACHE/<name> is valid while $CACHE/<name>.key holds the key of its inputs.

hash_of() { cat "$@" | sha256sum | cut -c1-64; }

cached() { [[ -e $CACHE/$1 && -f $CACHE/$1.key && $(<"$CACHE/$1.key") == "$2" ]]; }
stamp() { echo "$2" >"$CACHE/$1.key"; }

go_build() { # go_build NAME PKGDIR [env...]: build a helper of this module into the cache
	local name=$1 pkg=$2
	shift 2
	command -v "$GO" >/dev/null || die "$GO not found: needed once to build test/env/$name"
	say "building test/env/$name"
	(cd "$REPO" && env "$@" "$GO" build -buildvcs=false -o "$CACHE/$name.tmp" "./test/env/$pkg") >&2 ||
		die "cannot build test/env/$pkg"
	mv -f "$CACHE/$name.tmp" "$CACHE/$name"
}

build_tools() {
	local key
	mkdir -p "$CACHE"
	key=$(hash_of "$HERE/mkimage/main.go")
	if ! cached mkimage "$key"; then go_build mkimage mkimage; stamp mkimage "$key"; fi
	# runtimectl uses the module's CRI and gRPC dependencies: key on go.mod/go.sum too.
	key=$(hash_of "$HERE/runtimectl/main.go" "$REPO/go.mod" "$REPO/go.sum")
	if ! cached runtimectl "$key"; then go_build runtimectl runtimectl; stamp runtimectl "$key"; fi
	key=$(hash_of "$HERE/pause/main.go")
	if ! cached pause "$key"; then go_build pause pause CGO_ENABLED=0; stamp pause "$key"; fi
	# grpchealth (the gRPC health server that grpc probes are tested against) goes into busybox.
	key=$(hash_of "$HERE/grpchealth/main.go" "$REPO/go.mod" "$REPO/go.sum")
	if ! cached grpchealth "$key"; then go_build grpchealth grpchealth CGO_ENABLED=0; stamp grpchealth "$key"; fi
}

# busybox_rootfs DIR: the content of localhost/busybox:latest.
busybox_rootfs() {
	local r=$1 p
	mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/root" "$r/home" "$r/var"
	chmod 1777 "$r/tmp"
	chmod 0700 "$r/root"
	cp "$BUSYBOX" "$r/bin/busybox"
	chmod 0755 "$r/bin/busybox"
	"$BUSYBOX" --list-full | while read -r p; do
		[[ -z $p || $p == bin/busybox ]] && continue
		mkdir -p "$r/$(dirname "$p")"
		ln -sf /bin/busybox "$r/$p"
	done
	printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/home:/bin/false' >"$r/etc/passwd"
	printf '%s\n' 'root:x:0:' 'nobody:x:65534:' >"$r/etc/group"
	cp "$CACHE/grpchealth" "$r/bin/grpchealth"
	chmod 0755 "$r/bin/grpchealth"
}

build_images() {
	local key tmp mkimage_key recipe
	mkimage_key=$(<"$CACHE/mkimage.key")
	recipe=$(declare -f busybox_rootfs build_images)
	key=$(printf '%s\n' "$mkimage_key" "$(hash_of "$CACHE/pause")" "$recipe" | sha256sum | cut -c1-64)
	if ! cached pause.tar "$key"; then
		say "building image $PAUSE_IMAGE"
		"$CACHE/mkimage" -o "$CACHE/pause.tar" -name "$PAUSE_IMAGE" -file "$CACHE/pause=/pause" \
			-entrypoint /pause -user 65535:65535
		stamp pause.tar "$key"
	fi
	key=$(printf '%s\n' "$mkimage_key" "$(hash_of "$BUSYBOX" "$CACHE/grpchealth")" "$recipe" | sha256sum | cut -c1-64)
	if ! cached busybox.tar "$key"; then
		say "building image $BUSYBOX_IMAGE"
		tmp=$(mktemp -d "$CACHE/rootfs.XXXXXX")
		busybox_rootfs "$tmp"
		"$CACHE/mkimage" -o "$CACHE/busybox.tar" -name "$BUSYBOX_IMAGE" -rootfs "$tmp" -cmd sh
		rm -rf "$tmp"
		stamp busybox.tar "$key"
	fi
}

# ---------------------------------------------------------------------------------------------
# configuration

write_config() {
	mkdir -p "$CNI_CONF_DIR" "$STATE/opt"
	rm -f "$CNI_CONF_DIR"/*
	# containerd adds the loopback network itself (go-cni WithLoNetwork, from bin_dir), so the
	# conflist holds the pod network only: bridge + host-local, and portmap for hostPort.
	cat >"$CNI_CONF_DIR/10-$NET.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$NET",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$SUBNET" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    {
      "type": "portmap",
      "capabilities": { "portMappings": true }
    }
  ]
}
EOF
	# Notes on the choices below:
	# - restrict_oom_score_adj: containers may not get an oom_score_adj below containerd's own,
	#   as lowering it needs CAP_SYS_RESOURCE, which test machines may lack.
	# - netns_mounts_under_state_dir: pod network namespaces are bind-mounted under our state
	#   folder instead of the shared /var/run/netns, so they are ours beyond doubt.
	# - runc Root: runc's state under our run folder, not the system's /run/containerd/runc.
	# - SystemdCgroup = false: cgroupfs; there may be no systemd. Without a cgroup parent the
	#   containers land in /sys/fs/cgroup/<controller>/k8s.io/<id>.
	# - the disabled snapshotters cannot work here (no btrfs, zfs, aufs, devmapper pool) and only
	#   fill the log with warnings. (io.containerd.runtime.v1.linux must stay: the tasks service
	#   of containerd 1.6, hence the CRI, fails to load without it.)
	cat >"$CONFIG" <<EOF
# Written by test/env/runtime.sh; rewritten at every start, edit the script instead.
version = 2
root = "$ROOT"
state = "$CTRD_STATE"
oom_score = 0
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "$SOCK"

[debug]
  level = "$LOG_LEVEL"
  # pprof and expvar on a root-only socket: the bench reads containerd's CPU profile from it.
  address = "$RUN_DIR/debug.sock"

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$STATE/opt"

  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "$PAUSE_IMAGE"
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false

    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = "$RUNC_ROOT"

    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "$CNI_BIN"
      conf_dir = "$CNI_CONF_DIR"
      max_conf_num = 1
EOF
}

# ---------------------------------------------------------------------------------------------
# up

start_containerd() {
	local pid t0 i
	mkdir -p "$RUN_DIR" "$(dirname "$SOCK")" "$ROOT"
	rm -f "$SOCK"
	printf '\n=== runtime.sh: starting containerd at %s ===\n' "$(date -Is)" >>"$LOG"
	t0=$(now_ms)
	# setsid detaches it from our session and terminal. Not nohup: an ignored SIGHUP would be
	# inherited by the shims and, through exec, by every container process.
	# fd 9 (our lock) must not leak into containerd.
	(cd / && exec setsid containerd --config "$CONFIG") </dev/null >>"$LOG" 2>&1 9>&- &
	pid=$!
	echo "$pid" >"$PIDFILE"
	for ((i = 0; i < 600; i++)); do
		if ! alive "$pid"; then
			tail -n 30 "$LOG" >&2
			rm -f "$PIDFILE"
			die "containerd exited during start; log: $LOG"
		fi
		answering && break
		sleep 0.05
	done
	answering || { tail -n 30 "$LOG" >&2; die "containerd did not answer on $SOCK within 30 s; log: $LOG"; }
	say "containerd (pid $pid) answering on $SOCK after $(($(now_ms) - t0)) ms"
}

up() {
	local pid t0 i
	check_paths
	[[ $(id -u) == 0 ]] || die "must run as root"
	lock
	if pid=$(our_pid); then
		# Give a busy containerd some time before calling it broken and restarting it.
		for ((i = 0; i < 10; i++)); do
			if answering; then
				say "already running (pid $pid)"
				echo "CONTAINER_RUNTIME_ENDPOINT=$ENDPOINT"
				return 0
			fi
			sleep 0.5
		done
		say "containerd (pid $pid) runs but does not answer on $SOCK: restarting it"
	fi
	t0=$(now_ms)
	ensure_packages
	teardown # whatever a previous run left behind: a fresh containerd every time
	! answering || die "something else answers on $SOCK"
	build_tools
	build_images
	write_config
	# From here on a failure must not leave a half-ready containerd that the next `up` would
	# take for a running one.
	trap 'say "up failed: tearing down"; teardown' EXIT
	start_containerd
	ctr_ -n k8s.io images import "$CACHE/pause.tar" >&2
	ctr_ -n k8s.io images import "$CACHE/busybox.tar" >&2
	"$CACHE/runtimectl" -endpoint "$ENDPOINT" -timeout 30s wait -image "$PAUSE_IMAGE" -image "$BUSYBOX_IMAGE" ||
		die "the CRI did not become ready; log: $LOG"
	trap - EXIT
	say "up in $(($(now_ms) - t0)) ms; log: $LOG"
	echo "CONTAINER_RUNTIME_ENDPOINT=$ENDPOINT"
}

# ---------------------------------------------------------------------------------------------
# down

# mounts_under DIR...: mount points at or below the folders, innermost (last mounted) first.
mounts_under() {
	local d
	awk '{ print $5 }' /proc/self/mountinfo | sed 's/\\040/ /g' | tac | while IFS= read -r m; do
		for d in "$@"; do
			if [[ $m == "$d" || $m == "$d"/* ]]; then
				echo "$m"
				break
			fi
		done
	done
}

unmount_under() {
	local m n=0 pass
	for pass in 1 2 3; do # a stacked mount may hide another one below it
		while IFS= read -r m; do
			umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "cannot unmount $m"
			n=$((n + 1))
		done < <(mounts_under "$@")
		[[ -z $(mounts_under "$@") ]] && break
	done
	((n == 0)) || say "unmounted $n mount(s)"
}

# our_ids: ids of containers and sandboxes this containerd has known, from its state folders.
our_ids() {
	{
		ls "$CTRD_STATE"/io.containerd.runtime.v2.task/*/ 2>/dev/null
		ls "$RUNC_ROOT"/*/ 2>/dev/null
	} | grep -E '^[0-9a-zA-Z][0-9a-zA-Z_.-]{2,}$' | sort -u || true
}

# shim_pids: containerd-shim-runc-v2 processes serving our socket.
shim_pids() {
	local f pid argv0
	# grep -z reads cmdline's NUL-separated arguments as lines: -x matches one argument exactly.
	for f in $(grep -lzxsF -- "$SOCK" /proc/[0-9]*/cmdline); do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		{ IFS= read -r -d '' argv0 <"$f"; } 2>/dev/null || continue
		[[ $argv0 == *containerd-shim* ]] && echo "$pid"
	done
	return 0
}

stop_pods() {
	local ns id n=0
	if [[ -x $CACHE/runtimectl ]]; then
		"$CACHE/runtimectl" -endpoint "$ENDPOINT" -timeout 60s cleanup || say "CRI cleanup incomplete, going on"
	fi
	# Anything else, e.g. made with ctr rather than the CRI.
	for ns in $(ctr_ namespaces ls -q 2>/dev/null); do
		for id in $(ctr_ -n "$ns" tasks ls -q 2>/dev/null); do
			ctr_ -n "$ns" tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true
			ctr_ -n "$ns" tasks rm -f "$id" >/dev/null 2>&1 || true
			n=$((n + 1))
		done
		for id in $(ctr_ -n "$ns" containers ls -q 2>/dev/null); do
			ctr_ -n "$ns" containers rm "$id" >/dev/null 2>&1 || true
		done
	done
	((n == 0)) || say "killed $n task(s) with ctr"
}

stop_containerd() {
	local pid i
	pid=$(our_pid) || return 0
	say "stopping containerd (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 200; i++)); do
		alive "$pid" || break
		sleep 0.05
	done
	if alive "$pid"; then
		say "containerd (pid $pid) ignores SIGTERM: killing it"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.2
	fi
}

cleanup_iptables() {
	local table rule target chains n=0
	command -v iptables >/dev/null || return 0
	# Both plugins tag their rules with comments naming the network, as iptables -S prints them:
	#   --comment "name: \"berth-test\" id: \"<container id>\""        (bridge, ipMasq)
	#   --comment "dnat name: \"berth-test\" id: \"<container id>\""   (portmap)
	local tag="name: \\\"$NET\\\" id: "
	for table in nat filter mangle; do
		chains=()
		while IFS= read -r rule; do
			target=$(sed -n 's/.* -j \(CNI-[^ ]*\).*/\1/p' <<<"$rule")
			# per-container chains go; the shared CNI-HOSTPORT-* chains stay.
			[[ -n $target && $target != CNI-HOSTPORT-* ]] && chains+=("$target")
			eval "iptables -w 5 -t $table -D ${rule#-A }" 2>/dev/null && n=$((n + 1))
		done < <(iptables -w 5 -t "$table" -S 2>/dev/null | grep '^-A ' | grep -F -- "$tag")
		for target in $(printf '%s\n' "${chains[@]}" | sort -u); do
			iptables -w 5 -t "$table" -F "$target" 2>/dev/null || true
			iptables -w 5 -t "$table" -X "$target" 2>/dev/null || true
		done
	done
	# portmap's shared chains, once no network has a port mapping left in them.
	if iptables -w 5 -t nat -S CNI-HOSTPORT-DNAT >/dev/null 2>&1 &&
		! iptables -w 5 -t nat -S CNI-HOSTPORT-DNAT | grep -q '^-A '; then
		while IFS= read -r rule; do
			eval "iptables -w 5 -t nat -D ${rule#-A }" 2>/dev/null && n=$((n + 1))
		done < <(iptables -w 5 -t nat -S | grep -E '^-A (PREROUTING|OUTPUT|POSTROUTING) .*-j CNI-HOSTPORT-(DNAT|MASQ)$')
		for target in CNI-HOSTPORT-DNAT CNI-HOSTPORT-SETMARK CNI-HOSTPORT-MASQ; do
			iptables -w 5 -t nat -F "$target" 2>/dev/null || true
			iptables -w 5 -t nat -X "$target" 2>/dev/null || true
		done
	fi
	((n == 0)) || say "removed $n CNI iptables rule(s)"
}

cleanup_cgroups() {
	local ids mnt id d n=0
	ids=$1
	while read -r mnt; do
		[[ -d $mnt/k8s.io ]] || continue
		for id in $ids; do
			[[ -d $mnt/k8s.io/$id ]] || continue
			while IFS= read -r d; do
				rmdir "$d" 2>/dev/null && n=$((n + 1))
			done < <(find "$mnt/k8s.io/$id" -depth -type d 2>/dev/null)
		done
		rmdir "$mnt/k8s.io" 2>/dev/null || true # only if empty, i.e. nobody else uses it
	done < <(awk '$9 == "cgroup" || $9 == "cgroup2" { print $5 }' /proc/self/mountinfo)
	((n == 0)) || say "removed $n cgroup(s)"
}

# safe_rm PATH...: remove, unless something is still mounted below (rm would cross into it).
safe_rm() {
	local p m mounted busy
	mounted=$(mounts_under "$@")
	for p in "$@"; do
		[[ -e $p || -L $p ]] || continue
		busy=
		while IFS= read -r m; do
			[[ -n $m && ($m == "$p" || $m == "$p"/*) ]] && busy=$m
		done <<<"$mounted"
		if [[ -n $busy ]]; then
			say "not removing $p: $busy is still mounted"
			continue
		fi
		rm -rf --one-file-system "$p"
	done
}

# teardown undoes everything up did, from any state: running, half-started, crashed or clean.
teardown() {
	local pid id ids pids f addr ns
	if our_pid >/dev/null && answering; then
		stop_pods
	fi
	stop_containerd
	ids=$(our_ids)

	# Containers left running (containerd died or did not stop them): runc kills their
	# processes and removes their cgroups. Before the shims go, so that they reap them.
	# Those made with ctr instead of the CRI use runc's default root, shared with the system's
	# containerd: there, only the ids that have a task bundle in our state folder.
	for ns in "$RUNC_ROOT"/*/ /run/containerd/runc/*/; do
		[[ -d $ns ]] || continue
		for id in $(runc --root "$ns" list -q 2>/dev/null); do
			[[ $ns == "$RUNC_ROOT"/* || -d $CTRD_STATE/io.containerd.runtime.v2.task/$(basename "$ns")/$id ]] || continue
			say "deleting leftover container $id"
			runc --root "$ns" delete --force "$id" >/dev/null 2>&1 || true
		done
	done
	pids=$(shim_pids)
	if [[ -n $pids ]]; then
		say "killing leftover shim(s): $(echo $pids)"
		kill -KILL $pids 2>/dev/null || true
		sleep 0.1
	fi
	# Shim sockets live in /run/containerd/s whatever the state folder: read them from the bundles.
	for f in "$CTRD_STATE"/io.containerd.runtime.v2.task/*/*/address; do
		[[ -f $f ]] || continue
		addr=$(<"$f")
		addr=${addr#unix://}
		[[ $addr == /run/containerd/s/* && -S $addr ]] && rm -f "$addr"
	done

	unmount_under "$STATE" "$RUN_DIR"
	# Network namespaces: ours are under $CTRD_STATE (netns_mounts_under_state_dir) and gone
	# with the unmount above; older configurations put them in /var/run/netns.
	if [[ -f $ROOT/io.containerd.metadata.v1.bolt/meta.db ]]; then
		for ns in $(grep -aoE '/var/run/netns/cni-[0-9a-f-]{36}' "$ROOT/io.containerd.metadata.v1.bolt/meta.db" | sort -u); do
			[[ -e $ns ]] || continue
			say "removing network namespace $ns"
			ip netns delete "${ns##*/}" 2>/dev/null || { umount -l "$ns" 2>/dev/null; rm -f "$ns"; }
		done
	fi
	if ip link show "$BRIDGE" >/dev/null 2>&1; then
		say "removing bridge $BRIDGE"
		ip link delete "$BRIDGE" 2>/dev/null || true
	fi
	rm -rf "/var/lib/cni/networks/$NET" "/var/lib/cni/results/$NET-"*
	for id in $ids; do # the cached results of the loopback network, cni-loopback-<id>-lo
		rm -f /var/lib/cni/results/*-"$id"-*
	done
	rmdir /var/lib/cni/networks /var/lib/cni/results /var/lib/cni 2>/dev/null || true
	cleanup_iptables
	cleanup_cgroups "$ids"

	safe_rm "$ROOT" "$CTRD_STATE" "$RUNC_ROOT" "$SOCK" "$SOCK.ttrpc" "$PIDFILE"
	# What containers made with ctr leave in the shared /run/containerd: their stdio FIFOs and
	# runc folders. Then empty folders only: the system's containerd may own them.
	for id in $ids; do
		rm -f /run/containerd/fifo/*/"$id"-std{in,out,err}
	done
	rmdir /run/containerd/fifo/* /run/containerd/fifo /run/containerd/runc/* /run/containerd/runc \
		/run/containerd/s /run/containerd "$RUN_DIR" "$(dirname "$RUN_DIR")" 2>/dev/null || true
}

down() {
	check_paths
	[[ $(id -u) == 0 ]] || die "must run as root"
	lock
	teardown
}

status() {
	local pid
	if pid=$(our_pid) && answering; then
		echo "running: pid $pid, CONTAINER_RUNTIME_ENDPOINT=$ENDPOINT, log $LOG"
		return 0
	fi
	if pid=$(our_pid); then
		echo "not answering: containerd pid $pid does not answer on $SOCK; log $LOG"
		return 1
	fi
	echo "not running"
	return 3
}

case ${1:-} in
up) up ;;
down) down ;;
status) status ;;
*)
	echo "usage: $0 up|down|status" >&2
	exit 2
	;;
esac
