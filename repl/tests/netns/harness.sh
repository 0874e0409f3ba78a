#!/usr/bin/env bash
# Multi-host harness for slcp's LAN tests: N network namespaces ("hosts"), each with eth0 on one
# bridge that lives in a namespace of its own, so nothing touches the machine's real network.
#
#   harness.sh up NAME N      create NAME-sw (the bridge) and NAME-h1..NAME-hN, host i at 10.99.0.i/24
#   harness.sh down NAME      kill every process in NAME-* namespaces and delete them (idempotent)
#   harness.sh host NAME I ADDR/PREFIX   add host I with that address (another subnet, same wire)
#   harness.sh route NAME I CIDR   route CIDR out of host I's eth0
#   harness.sh link NAME I up|down   take host I's link down or up
#   harness.sh check          exit 0 if namespaces can be made here (root, iproute2)
#
# Requires root. Addresses are only ever inside these namespaces.
set -euo pipefail

die() { echo "harness: $*" >&2; exit 1; }

# add_host NAME I ADDR/PREFIX: namespace NAME-hI with eth0 on NAME-sw's bridge at ADDR.
add_host() {
  local name=$1 i=$2 addr=$3 h="$1-h$2"
  ip netns add "$h"
  ip -n "$name-sw" link add "p$i" type veth peer name eth0 netns "$h"
  ip -n "$name-sw" link set "p$i" master br0
  ip -n "$name-sw" link set "p$i" up
  ip -n "$h" link set lo up
  ip -n "$h" addr add "$addr" brd + dev eth0
  ip -n "$h" link set eth0 up
}

cmd=${1:-}
case "$cmd" in
  check)
    [ "$(id -u)" = 0 ] || die "not root: network namespaces need root"
    command -v ip >/dev/null || die "ip (iproute2) is not installed"
    probe="slcpprobe$$"
    ip netns add "$probe" 2>/dev/null || die "ip netns add failed: namespaces are not available here"
    ip netns del "$probe"
    ;;
  up)
    name=${2:?NAME}; n=${3:?N}
    sw="$name-sw"
    # The kernel's ARP table is one for all namespaces, and overflows at gc_thresh3 (1 024 by
    # default) entries: 40 hosts that each know the other 39 pass that, and then a send whose
    # neighbour entry was collected fails with ENOBUFS ("neighbor table overflow" in dmesg),
    # which separate machines would never see. Room for (N + 2)^2 entries, raised only.
    want=$(( (n + 2) * (n + 2) * 2 ))
    for k in 1 2 3; do
      f=/proc/sys/net/ipv4/neigh/default/gc_thresh$k
      cur=$(cat "$f")
      [ "$cur" -ge $(( want * k / 3 )) ] || echo $(( want * k / 3 )) > "$f"
    done
    ip netns add "$sw"
    ip -n "$sw" link add br0 type bridge forward_delay 0 stp_state 0
    ip -n "$sw" link set br0 up
    for i in $(seq 1 "$n"); do
      add_host "$name" "$i" "10.99.0.$i/24"
    done
    ;;
  host)
    # An extra host with an address of its own choosing (e.g. another subnet on the same wire).
    name=${2:?NAME}; i=${3:?I}; addr=${4:?ADDR/PREFIX}
    add_host "$name" "$i" "$addr"
    ;;
  route)
    # A route on host I to CIDR straight out of eth0 (same wire, other subnet).
    name=${2:?NAME}; i=${3:?I}; cidr=${4:?CIDR}
    ip -n "$name-h$i" route add "$cidr" dev eth0
    ;;
  link)
    name=${2:?NAME}; i=${3:?I}; state=${4:?up|down}
    ip -n "$name-h$i" link set eth0 "$state"
    ;;
  down)
    name=${2:?NAME}
    for ns in $(ip netns list | awk '{print $1}' | grep -E "^$name-(sw|h[0-9]+)$" || true); do
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
      ip netns del "$ns" 2>/dev/null || true
    done
    ;;
  *)
    die "usage: harness.sh up NAME N | host NAME I ADDR | route NAME I CIDR | down NAME | link NAME I up|down | check"
    ;;
esac
