#!/bin/sh
# /init of the kTLS guest (built into the base initramfs by prepare.sh).
# Runs /test.sh from the overlay that run.sh appends, then prints the guest's
# own result line, which run.sh requires: qemu exits 0 whatever happens here.
export PATH=/usr/local/bin:/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
ip link set lo up
# The kernel calls this to autoload tls and the AEAD modules on first use.
echo /sbin/modprobe >/proc/sys/kernel/modprobe
echo "KTLS-VM: guest up, kernel $(uname -r), $(nproc) cpus, $(cut -d' ' -f1 /proc/uptime)s since boot"

if [ -f /test.sh ]; then
    cd /tmp
    sh /test.sh
    rc=$?
    if [ "$rc" -eq 0 ]; then
        echo "KTLS-VM-RESULT: PASS"
    else
        echo "KTLS-VM-RESULT: FAIL /test.sh exited $rc"
    fi
else
    echo "KTLS-VM-RESULT: FAIL no /test.sh in the initramfs"
fi
echo "KTLS-VM: done after $(cut -d' ' -f1 /proc/uptime)s"
sync
poweroff -f
