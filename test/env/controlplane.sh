#!/usr/bin/env bash
# test/env/controlplane.sh - a real etcd and kube-apiserver on 127.0.0.1, for Berth's cluster-mode
# tests. No controller manager, no scheduler: tests bind pods with spec.nodeName and create the
# objects controllers would (the default ServiceAccount, the kube-root-ca.crt ConfigMap).
#
#   test/env/controlplane.sh up DIR       build what is missing (cached), write the certificates
#                                         and kubeconfigs, start etcd and kube-apiserver, wait for
#                                         /readyz. The LAST line of stdout is
#                                           KUBECONFIG=DIR/admin.kubeconfig
#                                         (progress goes to stderr). A no-op when already running.
#   test/env/controlplane.sh down DIR     stop kube-apiserver and etcd, remove etcd's data (unless
#                                         KEEP_ETCD=1). Keeps certificates, kubeconfigs and logs.
#   test/env/controlplane.sh status DIR   print what runs; exit 0 if both run and answer, 3 if
#                                         nothing runs, 1 otherwise.
#   test/env/controlplane.sh stop-apiserver DIR    stop kube-apiserver only (etcd keeps running).
#   test/env/controlplane.sh start-apiserver DIR   start it again on the same etcd, wait for /readyz.
#   test/env/controlplane.sh build kube-apiserver|kubelet|kubectl|etcd|pki
#                                         build one tool into the cache if missing; the last line
#                                         of stdout is its path.
#
# DIR (created if missing) holds everything of one control plane:
#   ca.crt ca.key                         test CA: client CA, kubelet CA, signs everything below
#   apiserver.crt/.key                    kube-apiserver serving (127.0.0.1, localhost, kubernetes.default.svc..., 10.96.0.1)
#   apiserver-kubelet-client.crt/.key     kube-apiserver's identity towards kubelets (CN kube-apiserver-kubelet-client)
#   sa.key sa.pub                         service-account token signing key
#   admin.crt/.key admin.kubeconfig       CN berth-test-admin, O system:masters
#   node.crt/.key node.kubeconfig         CN system:node:$NODE_NAME, O system:nodes
#   node-serving.crt/.key                 the node's serving certificate: $NODE_NAME, 127.0.0.1, $NODE_IP
#   env                                   APISERVER_URL=, ADMIN_KUBECONFIG=, NODE_KUBECONFIG=, NODE_NAME=, ... (while up)
#   etcd/ etcd.log etcd.pid kube-apiserver.log kube-apiserver.pid
#
# Environment (all optional):
#   NODE_NAME                 the node identity of node.kubeconfig.    default berth-node
#   NODE_IP                   node IP(s), comma-separated, added to node-serving.crt. default none
#   APISERVER_PORT            kube-apiserver's secure port.            default 6443
#   ETCD_CLIENT_PORT          etcd client port (plain HTTP).           default 23790
#   ETCD_PEER_PORT            etcd peer port.                          default 23800
#   SERVICE_CLUSTER_IP_RANGE  --service-cluster-ip-range (IPv4).       default 10.96.0.0/16
#   KEEP_ETCD                 1: keep etcd's data across down and up.  default 0 (fresh every up)
#   APISERVER_LOG_LEVEL       kube-apiserver --v.                      default 1
#   APISERVER_EXTRA_ARGS      more kube-apiserver flags, space-separated (e.g. --feature-gates=...)
#   BERTH_TOOLS_CACHE         built binaries, named after their version. default /var/cache/berth-test/bin
#   GO                        go command that builds the tools (only when not cached). default go
# A second, concurrent control plane needs its own DIR and ports.
set -euo pipefail

NODE_NAME=${NODE_NAME:-berth-node}
NODE_IP=${NODE_IP:-}
APISERVER_PORT=${APISERVER_PORT:-6443}
ETCD_CLIENT_PORT=${ETCD_CLIENT_PORT:-23790}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-23800}
SERVICE_CIDR=${SERVICE_CLUSTER_IP_RANGE:-10.96.0.0/16}
KEEP_ETCD=${KEEP_ETCD:-0}
APISERVER_V=${APISERVER_LOG_LEVEL:-1}
APISERVER_EXTRA_ARGS=${APISERVER_EXTRA_ARGS:-}
CACHE=${BERTH_TOOLS_CACHE:-/var/cache/berth-test/bin}
GO=${GO:-go}

APISERVER_URL=https://127.0.0.1:$APISERVER_PORT
ETCD_URL=http://127.0.0.1:$ETCD_CLIENT_PORT
SA_ISSUER=https://kubernetes.default.svc.cluster.local
APT_PACKAGES=(curl iproute2 util-linux)

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TOOLS=$REPO/test/tools
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}

say() { printf 'controlplane.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
now_ms() { local t=${EPOCHREALTIME//[!0-9]/}; echo $((10#$t / 1000)); }

# alive PID: the process exists and is not a zombie (a child of ours that exited stays one).
alive() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	[[ ${st%% *} != [ZX] ]]
}

# set_dir DIR [create]: the control plane's folder, absolute, and the paths in it.
set_dir() {
	[[ -n ${1:-} ]] || die "missing DIR (usage: $0 ${VERB:-up} DIR)"
	local d=$1
	[[ $d != *[[:space:]\"\'\$\\]* ]] || die "DIR \"$d\": no spaces, quotes, \$ or \\ please (it ends up in env files)"
	if [[ ${2:-} == create ]]; then
		mkdir -p "$d"
	elif [[ ! -d $d ]]; then
		DIR=
		return 0
	fi
	DIR=$(cd "$d" && pwd -P)
	[[ $DIR != / ]] || die "DIR must not be /"
	ETCD_DATA=$DIR/etcd
	ETCD_LOG=$DIR/etcd.log
	ETCD_PIDFILE=$DIR/etcd.pid
	API_LOG=$DIR/kube-apiserver.log
	API_PIDFILE=$DIR/kube-apiserver.pid
	# Marks in the command lines that tell our processes from any other etcd or kube-apiserver.
	ETCD_MARK="-data-dir=$ETCD_DATA"
	API_MARK="--tls-cert-file=$DIR/apiserver.crt"
}

lock() {
	exec 9>"$DIR/.lock"
	flock -w 300 9 || die "another controlplane.sh holds $DIR/.lock"
}

check_settings() {
	local p
	for p in APISERVER_PORT ETCD_CLIENT_PORT ETCD_PEER_PORT; do
		if ! [[ ${!p} =~ ^[0-9]+$ ]] || ((${!p} < 1 || ${!p} > 65535)); then
			die "$p=\"${!p}\" is not a port"
		fi
	done
	[[ $NODE_NAME =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] ||
		die "NODE_NAME \"$NODE_NAME\" is not a lowercase DNS name"
	[[ $SERVICE_CIDR =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)\.([0-9]+)/([0-9]+)$ ]] ||
		die "SERVICE_CLUSTER_IP_RANGE \"$SERVICE_CIDR\": want an IPv4 CIDR"
	# The kubernetes service's ClusterIP: the first address of the range, in the serving cert.
	local ip=$(((BASH_REMATCH[1] << 24 | BASH_REMATCH[2] << 16 | BASH_REMATCH[3] << 8 | BASH_REMATCH[4]) + 1))
	SERVICE_IP=$((ip >> 24 & 255)).$((ip >> 16 & 255)).$((ip >> 8 & 255)).$((ip & 255))
}

ensure_packages() {
	local missing=() p
	for p in curl ss flock setsid; do
		command -v "$p" >/dev/null || missing+=("$p")
	done
	if ((${#missing[@]})) && command -v apt-get >/dev/null; then
		say "installing ${APT_PACKAGES[*]} with apt-get (missing: ${missing[*]})"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q >&2
		apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}" >&2
	fi
	for p in curl ss flock setsid; do
		command -v "$p" >/dev/null || die "$p not found in PATH"
	done
}

# ---------------------------------------------------------------------------------------------
# build cache: everything in $CACHE is named after its version; the helpers of test/tools also
# have a .key file holding the hash of their sources (rebuilt when it changes).

# module_version MODULE: its version in test/tools/go.mod (the build list, as go.mod is tidy).
module_version() {
	local v
	v=$(awk -v m="$1" '$1 == "require" { $1 = ""; $0 = $0 } $1 == m && $2 ~ /^v/ { print $2; exit }' "$TOOLS/go.mod")
	[[ -n $v ]] || die "$1 is not in $TOOLS/go.mod"
	echo "$v"
}

hash_of() { cat "$@" | sha256sum | cut -c1-64; }

# go_build OUT PKG LDFLAGS [NOTE]: build a package of the tools module (static) into $CACHE/OUT.
go_build() {
	local out=$1 pkg=$2 ldflags=$3 note=${4:-} t0
	command -v "$GO" >/dev/null || die "$GO not found: needed to build $pkg (once; then cached in $CACHE)"
	t0=$(now_ms)
	say "building $pkg into $CACHE/$out$note"
	(cd "$TOOLS" && CGO_ENABLED=0 "$GO" build -buildvcs=false -trimpath -ldflags "$ldflags" \
		-o "$CACHE/$out.tmp" "$pkg") >&2 9>&- || { rm -f "$CACHE/$out.tmp"; die "cannot build $pkg"; }
	mv -f "$CACHE/$out.tmp" "$CACHE/$out"
	say "built $out in $((($(now_ms) - t0) / 1000)) s"
}

# build NAME: make sure the tool is in the cache; sets BUILT to its path.
build() {
	local name=$1 v ld k key=
	case $name in
	kube-apiserver | kubelet | kubectl)
		v=$(module_version k8s.io/kubernetes)
		BUILT=$CACHE/$name-$v
		;;
	etcd)
		v=$(module_version go.etcd.io/etcd/server/v3)
		BUILT=$CACHE/etcd-$v
		key=$(hash_of "$TOOLS/etcd/main.go" "$TOOLS/go.mod" "$TOOLS/go.sum")
		;;
	pki)
		BUILT=$CACHE/pki
		key=$(hash_of "$TOOLS/pki/main.go")
		;;
	*) die "cannot build \"$name\": kube-apiserver, kubelet, kubectl, etcd or pki" ;;
	esac
	built && return 0
	if ! mkdir -p "$CACHE" 2>/dev/null || [[ ! -w $CACHE ]]; then
		die "cannot write to $CACHE to build $name: set BERTH_TOOLS_CACHE to a folder of yours"
	fi
	# One build at a time: two `up`s of different folders share the cache.
	exec 8>"$CACHE/.lock"
	flock -w 3600 8 || die "another build holds $CACHE/.lock for an hour"
	if ! built; then
		if [[ -n $v && -z $key ]]; then
			# The version stamps kube's own build sets (hack/lib/version.sh), so that /version
			# and User-Agents tell v1.x.y rather than v0.0.0-master.
			ld="-s -w"
			for k in gitVersion="$v" gitMajor="$(cut -d. -f1 <<<"${v#v}")" gitMinor="$(cut -d. -f2 <<<"$v")" \
				gitTreeState=clean buildDate="$(date -u +%Y-%m-%dT%H:%M:%SZ)"; do
				ld+=" -X k8s.io/client-go/pkg/version.$k -X k8s.io/component-base/version.$k"
			done
			# Static, as kube's release builds kube-apiserver and kubectl; kubelet too here (kube's
			# KUBE_STATIC_OVERRIDES=kubelet), so that no C toolchain is needed.
			go_build "${BUILT##*/}" "k8s.io/kubernetes/cmd/$name" "$ld" \
				" (cold: 10-25 min on 2 cores, depending on what else runs)"
		else
			go_build "${BUILT##*/}" "./$name" "-s -w"
			echo "$key" >"$BUILT.key"
		fi
	fi
	exec 8>&-
}

# built: $BUILT is in the cache, and (helpers) was built from the sources of hash $key.
built() { [[ -x $BUILT ]] && { [[ -z $key ]] || [[ -f $BUILT.key && $(<"$BUILT.key") == "$key" ]]; }; }

# ---------------------------------------------------------------------------------------------
# processes

# pids_of NAME MARK PIDFILE: our live processes: the pid file's, and any process whose program
# is NAME* and which has the argument MARK (found even when the pid file is gone).
pids_of() {
	local name=$1 mark=$2 pidfile=$3 f pid argv0
	{
		if [[ -f $pidfile ]]; then
			pid=$(<"$pidfile")
			[[ $pid =~ ^[0-9]+$ ]] && grep -qzsxF -- "$mark" "/proc/$pid/cmdline" && echo "$pid"
		fi
		# -z: cmdline's NUL-separated arguments as lines; -x: MARK is one whole argument.
		grep -lzsxF -- "$mark" /proc/[0-9]*/cmdline | while IFS= read -r f; do
			pid=${f#/proc/}
			pid=${pid%/cmdline}
			{ IFS= read -r -d '' argv0 <"$f"; } 2>/dev/null || continue
			argv0=${argv0##*/}
			[[ $argv0 == "$name"* ]] && echo "$pid"
		done
	} | sort -un | while read -r pid; do alive "$pid" && echo "$pid"; done
	return 0
}

etcd_pids() { pids_of etcd "$ETCD_MARK" "$ETCD_PIDFILE"; }
api_pids() { pids_of kube-apiserver "$API_MARK" "$API_PIDFILE"; }

etcd_healthy() { curl -fsS -m 2 "$ETCD_URL/health" 2>/dev/null | grep -q '"health":"true"'; }

api_get() { # api_get PATH: GET as the admin
	curl -fsS -m 5 --cacert "$DIR/ca.crt" --cert "$DIR/admin.crt" --key "$DIR/admin.key" "$APISERVER_URL$1"
}
api_ready() { [[ -f $DIR/admin.crt && $(api_get /readyz 2>/dev/null) == ok ]]; }

# stop etcd|kube-apiserver: SIGTERM to our processes of that name, SIGKILL after 20 s.
stop() {
	local name=$1 i p pids left
	if [[ $name == etcd ]]; then
		mapfile -t pids < <(etcd_pids)
	else
		mapfile -t pids < <(api_pids)
	fi
	((${#pids[@]})) || return 0
	say "stopping $name (pid ${pids[*]})"
	kill -TERM "${pids[@]}" 2>/dev/null || true
	for ((i = 0; i < 400; i++)); do
		left=()
		for p in "${pids[@]}"; do alive "$p" && left+=("$p"); done
		((${#left[@]})) || return 0
		sleep 0.05
	done
	say "$name (pid ${left[*]}) ignores SIGTERM: killing it"
	kill -KILL "${left[@]}" 2>/dev/null || true
	sleep 0.2
}

# port_free PORT VARIABLE: nothing listens on PORT (any address), or die naming who does.
port_free() {
	local out
	out=$(ss -Hltnp "sport = :$1" 2>/dev/null || true)
	[[ -z $out ]] || die "port $1 is in use ($(tr -s ' ' <<<"$out" | head -n1)): stop that or set $2"
}

# start_bg PIDFILE LOG PROGRAM ARGS...: start detached (setsid), log appended, pid recorded.
start_bg() {
	local pidfile=$1 log=$2
	shift 2
	printf '\n=== controlplane.sh: starting %s at %s ===\n' "${1##*/}" "$(date -Is)" >>"$log"
	# setsid: out of our session and terminal, so that it outlives the caller (make, go test).
	# fd 9 (our lock) must not leak into it.
	(cd / && exec setsid "$@") </dev/null >>"$log" 2>&1 9>&- &
	echo $! >"$pidfile"
}

start_etcd() {
	local pid t0 i
	port_free "$ETCD_CLIENT_PORT" ETCD_CLIENT_PORT
	port_free "$ETCD_PEER_PORT" ETCD_PEER_PORT
	if [[ $KEEP_ETCD != 1 ]]; then
		rm -rf --one-file-system "$ETCD_DATA"
	fi
	mkdir -p "$ETCD_DATA"
	chmod 0700 "$ETCD_DATA"
	t0=$(now_ms)
	# -unsafe-no-fsync: a test etcd whose data is thrown away; fsyncs only slow every write down.
	start_bg "$ETCD_PIDFILE" "$ETCD_LOG" "$ETCD_BIN" "$ETCD_MARK" \
		-listen-client-url="$ETCD_URL" -listen-peer-url="http://127.0.0.1:$ETCD_PEER_PORT" \
		-unsafe-no-fsync -log-level=warn
	pid=$(<"$ETCD_PIDFILE")
	for ((i = 0; i < 600; i++)); do
		if ! alive "$pid"; then
			tail -n 30 "$ETCD_LOG" >&2
			die "etcd exited during start; log: $ETCD_LOG"
		fi
		etcd_healthy && break
		sleep 0.05
	done
	etcd_healthy || { tail -n 30 "$ETCD_LOG" >&2; die "etcd not healthy on $ETCD_URL within 30 s; log: $ETCD_LOG"; }
	say "etcd (pid $pid) healthy on $ETCD_URL after $(($(now_ms) - t0)) ms"
}

start_apiserver() {
	local pid t0 i args extra
	port_free "$APISERVER_PORT" APISERVER_PORT
	# shellcheck disable=SC2054 # commas inside flag values
	args=(
		--bind-address=127.0.0.1
		--advertise-address=127.0.0.1
		# The endpoint reconciler refuses a loopback advertise address ("may not be in the loopback
		# range"): the kubernetes Service gets no endpoints. Nothing here routes service IPs anyway.
		--endpoint-reconciler-type=none
		--secure-port="$APISERVER_PORT"
		--etcd-servers="$ETCD_URL"
		--cert-dir="$DIR/kube-apiserver-certs" # unused (certificates given), but not /var/run/kubernetes
		"$API_MARK"
		--tls-private-key-file="$DIR/apiserver.key"
		--client-ca-file="$DIR/ca.crt"
		--authorization-mode=Node,RBAC
		--enable-admission-plugins=NodeRestriction
		--allow-privileged=true
		--service-cluster-ip-range="$SERVICE_CIDR"
		--service-account-issuer="$SA_ISSUER"
		--service-account-key-file="$DIR/sa.pub"
		--service-account-signing-key-file="$DIR/sa.key"
		--api-audiences="$SA_ISSUER"
		--kubelet-client-certificate="$DIR/apiserver-kubelet-client.crt"
		--kubelet-client-key="$DIR/apiserver-kubelet-client.key"
		--kubelet-certificate-authority="$DIR/ca.crt"
		--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname
		--profiling=false
		--v="$APISERVER_V"
	)
	read -ra extra <<<"$APISERVER_EXTRA_ARGS"
	t0=$(now_ms)
	start_bg "$API_PIDFILE" "$API_LOG" "$APISERVER_BIN" "${args[@]}" "${extra[@]}"
	pid=$(<"$API_PIDFILE")
	for ((i = 0; i < 1200; i++)); do
		if ! alive "$pid"; then
			tail -n 30 "$API_LOG" >&2
			die "kube-apiserver exited during start; log: $API_LOG"
		fi
		api_ready && break
		sleep 0.1
	done
	if ! api_ready; then
		tail -n 30 "$API_LOG" >&2
		api_get '/readyz?verbose' >&2 2>/dev/null || true
		die "kube-apiserver not ready on $APISERVER_URL within 120 s; log: $API_LOG"
	fi
	say "kube-apiserver (pid $pid) ready on $APISERVER_URL after $(($(now_ms) - t0)) ms"
	bind_kubelet_client
}

# bind_kubelet_client: what a real cluster grants the API server's identity towards kubelets, so
# that a kubelet authorizing it through SubjectAccessReview (logs, exec, port-forward) says yes:
# the bootstrap ClusterRole system:kubelet-api-admin.
bind_kubelet_client() {
	local code
	code=$(curl -sS -m 10 -o /dev/null -w '%{http_code}' --cacert "$DIR/ca.crt" \
		--cert "$DIR/admin.crt" --key "$DIR/admin.key" -H 'Content-Type: application/json' \
		-X POST "$APISERVER_URL/apis/rbac.authorization.k8s.io/v1/clusterrolebindings" -d @- <<'EOF'
{
  "apiVersion": "rbac.authorization.k8s.io/v1",
  "kind": "ClusterRoleBinding",
  "metadata": {"name": "berth-test:kube-apiserver-kubelet-client"},
  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:kubelet-api-admin"},
  "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "kube-apiserver-kubelet-client"}]
}
EOF
	) || true
	[[ $code == 201 || $code == 409 ]] || die "cannot create ClusterRoleBinding berth-test:kube-apiserver-kubelet-client (HTTP $code)"
}

write_pki() {
	"$PKI_BIN" -dir "$DIR" -node "$NODE_NAME" -node-ip "$NODE_IP" -server "$APISERVER_URL" \
		-service-ip "$SERVICE_IP" || die "cannot write certificates and kubeconfigs in $DIR"
}

write_env() {
	cat >"$DIR/env.tmp" <<EOF
APISERVER_URL=$APISERVER_URL
ADMIN_KUBECONFIG=$DIR/admin.kubeconfig
NODE_KUBECONFIG=$DIR/node.kubeconfig
NODE_NAME=$NODE_NAME
NODE_IP=$NODE_IP
CA_CERT=$DIR/ca.crt
NODE_SERVING_CERT=$DIR/node-serving.crt
NODE_SERVING_KEY=$DIR/node-serving.key
ETCD_URL=$ETCD_URL
SERVICE_CLUSTER_IP_RANGE=$SERVICE_CIDR
EOF
	mv -f "$DIR/env.tmp" "$DIR/env"
}

# prepare: everything up and start-apiserver need before starting anything.
prepare() {
	check_settings
	ensure_packages
	build pki
	PKI_BIN=$BUILT
	build etcd
	ETCD_BIN=$BUILT
	build kube-apiserver
	APISERVER_BIN=$BUILT
	write_pki
}

# ---------------------------------------------------------------------------------------------
# verbs

up() {
	local t0 i etcd_ok=
	set_dir "${1:-}" create
	lock
	t0=$(now_ms)
	prepare
	# etcd: keep the one running for this folder if it answers; otherwise a fresh one.
	if [[ -n $(etcd_pids) ]]; then
		for ((i = 0; i < 20; i++)); do
			etcd_healthy && { etcd_ok=1; break; }
			sleep 0.25
		done
		[[ -n $etcd_ok ]] || {
			say "etcd runs but does not answer on $ETCD_URL: restarting it"
			stop kube-apiserver
			stop etcd
		}
	fi
	if [[ -n $(api_pids) ]]; then
		for ((i = 0; i < 40; i++)); do
			api_ready && break
			sleep 0.25
		done
		if [[ -n $etcd_ok ]] && api_ready; then
			say "already running: etcd (pid $(etcd_pids)), kube-apiserver (pid $(api_pids))"
			write_env
			echo "KUBECONFIG=$DIR/admin.kubeconfig"
			return 0
		fi
		say "kube-apiserver runs but is not ready on $APISERVER_URL: restarting it"
		stop kube-apiserver
	fi
	port_free "$APISERVER_PORT" APISERVER_PORT # before starting etcd for nothing
	# From here on a failure must not leave a half-started control plane behind.
	trap 'say "up failed: stopping what was started"; stop kube-apiserver; stop etcd' EXIT
	[[ -n $etcd_ok ]] || start_etcd
	start_apiserver
	trap - EXIT
	write_env
	say "up in $(($(now_ms) - t0)) ms; logs: $ETCD_LOG, $API_LOG"
	echo "KUBECONFIG=$DIR/admin.kubeconfig"
}

down() {
	set_dir "${1:-}"
	[[ -n $DIR ]] || return 0
	lock
	stop kube-apiserver
	stop etcd
	rm -f "$API_PIDFILE" "$ETCD_PIDFILE" "$DIR/env"
	if [[ $KEEP_ETCD != 1 && -d $ETCD_DATA ]]; then
		rm -rf --one-file-system "$ETCD_DATA"
	fi
}

stop_apiserver() {
	set_dir "${1:-}"
	[[ -n $DIR ]] || return 0
	lock
	stop kube-apiserver
	rm -f "$API_PIDFILE"
}

start_apiserver_verb() {
	local t0
	set_dir "${1:-}"
	[[ -n $DIR ]] || die "no control plane in ${1:-}: use up"
	lock
	t0=$(now_ms)
	if [[ -z $(etcd_pids) ]] || ! etcd_healthy; then
		die "etcd does not run or answer for $DIR: use up"
	fi
	prepare
	if [[ -n $(api_pids) ]] && api_ready; then
		say "kube-apiserver already running (pid $(api_pids))"
	else
		stop kube-apiserver
		start_apiserver
		say "kube-apiserver started in $(($(now_ms) - t0)) ms"
	fi
	write_env
	echo "KUBECONFIG=$DIR/admin.kubeconfig"
}

status() {
	local e a rc=0 n=0
	set_dir "${1:-}"
	if [[ -z $DIR ]]; then
		echo "not running (no folder ${1:-})"
		return 3
	fi
	# The URLs it was started with, whatever the environment says now.
	if [[ -f $DIR/env ]]; then
		APISERVER_URL=$(sed -n 's/^APISERVER_URL=//p' "$DIR/env")
		ETCD_URL=$(sed -n 's/^ETCD_URL=//p' "$DIR/env")
	fi
	e=$(etcd_pids | xargs)
	a=$(api_pids | xargs)
	if [[ -z $e ]]; then
		echo "etcd: not running"
	elif etcd_healthy; then
		echo "etcd: running (pid $e), healthy on $ETCD_URL, data $ETCD_DATA"
		n=$((n + 1))
	else
		echo "etcd: running (pid $e), NOT answering on $ETCD_URL; log $ETCD_LOG"
		rc=1
	fi
	if [[ -z $a ]]; then
		echo "kube-apiserver: not running"
	elif api_ready; then
		echo "kube-apiserver: running (pid $a), ready on $APISERVER_URL; KUBECONFIG=$DIR/admin.kubeconfig"
		n=$((n + 1))
	else
		echo "kube-apiserver: running (pid $a), NOT ready on $APISERVER_URL; log $API_LOG"
		rc=1
	fi
	if ((rc == 0 && n == 0)); then return 3; fi
	if ((rc == 0 && n == 1)); then return 1; fi
	return $rc
}

VERB=${1:-}
case $VERB in
up) up "${2:-}" ;;
down) down "${2:-}" ;;
status) status "${2:-}" ;;
stop-apiserver) stop_apiserver "${2:-}" ;;
start-apiserver) start_apiserver_verb "${2:-}" ;;
build)
	[[ -n ${2:-} ]] || die "usage: $0 build kube-apiserver|kubelet|kubectl|etcd|pki"
	build "$2"
	echo "$BUILT"
	;;
*)
	echo "usage: $0 up|down|status|stop-apiserver|start-apiserver DIR" >&2
	echo "       $0 build kube-apiserver|kubelet|kubectl|etcd|pki" >&2
	exit 2
	;;
esac
