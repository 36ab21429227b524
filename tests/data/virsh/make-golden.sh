#!/bin/sh
# The golden files beside this script, each the output of real virsh on node.xml through
# libvirt's in-process test driver (no daemon). Run it to make them again:
#     sh tests/data/virsh/make-golden.sh
# Each line below is the command that made the file it writes. The test driver keeps no
# state between processes, so a listing of a stopped pool stops it in the same virsh run
# and drops the first two lines ("Pool stopped destroyed" and virsh's empty line).
set -eu
cd "$(dirname "$0")"
export LC_ALL=C.UTF-8
v() { virsh -c "test://$PWD/node.xml" "$@"; }
stopped() { v "pool-destroy stopped; $1" | tail -n +3; }

v pool-list > pool-list.txt
v pool-list --details > pool-list-details.txt
stopped "pool-list --all" > pool-list-all.txt
stopped "pool-list --all --details" > pool-list-all-details.txt
stopped "pool-list --inactive" > pool-list-inactive.txt
v pool-info vms > pool-info-vms.txt
v pool-info --bytes vms > pool-info-bytes-vms.txt
v pool-info Backup > pool-info-Backup.txt
v pool-info --bytes Backup > pool-info-bytes-Backup.txt
stopped "pool-info stopped" > pool-info-stopped.txt
stopped "pool-info --bytes stopped" > pool-info-bytes-stopped.txt
v pool-info --bytes stopped > pool-info-bytes-stopped-running.txt
v vol-list vms > vol-list-vms.txt
v vol-list vms --details > vol-list-details-vms.txt
v vol-list Backup > vol-list-Backup.txt
v vol-list Backup --details > vol-list-details-Backup.txt
v vol-info --pool vms tiny.img > vol-info-tiny.txt
v vol-info --bytes --pool vms tiny.img > vol-info-bytes-tiny.txt
v vol-info --pool vms web.qcow2 > vol-info-web.txt
v vol-info --bytes --pool vms web.qcow2 > vol-info-bytes-web.txt
v vol-info --pool vms Almost-1MiB.img > vol-info-almost.txt
v vol-info --pool vms huge.img > vol-info-huge.txt
v vol-info --bytes --pool vms huge.img > vol-info-bytes-huge.txt
v vol-info --pool vms データ.img > vol-info-wide.txt
