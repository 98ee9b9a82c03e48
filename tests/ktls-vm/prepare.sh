#!/usr/bin/env bash
# prepare.sh CACHE_DIR
#
# Builds what run.sh boots: a Debian Linux 6.1 kernel, which has kTLS (the
# hosts here do not: CONFIG_TLS is unset), and a base initramfs with
# busybox-static, the tls and crypto modules, and an /init that runs
# /test.sh and prints the guest's own result line.
#
# Debian packages only. Idempotent: a second run with the same CACHE_DIR
# finds everything in place and returns at once.
#
# Environment:
#   KTLS_VM_KERNEL_PKG  kernel package to use (default: found with apt-cache,
#                       preferring linux-image-6.1.0-N-amd64)
set -euo pipefail

CACHE_DIR=${1:?usage: prepare.sh CACHE_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$CACHE_DIR"
CACHE_DIR=$(cd "$CACHE_DIR" && pwd)

log() { echo "prepare: $*" >&2; }
die() { echo "prepare: error: $*" >&2; exit 1; }

# -- 1. host tools ----------------------------------------------------------
need_pkgs=()
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx cpio || need_pkgs+=(busybox-static)
command -v xz >/dev/null || need_pkgs+=(xz-utils)
apt_updated=0
apt_update_once() {
    if [ "$apt_updated" = 0 ]; then
        log "apt-get update"
        apt-get update -qq >&2
        apt_updated=1
    fi
}
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    apt_update_once
    log "installing ${need_pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_pkgs[@]}" >&2
fi
# busybox-static provides /bin/busybox; a dynamic busybox would need its libs
# (ldd fails on a static binary).
if ldd /bin/busybox >/dev/null 2>&1; then
    die "/bin/busybox is dynamically linked; install busybox-static"
fi

# -- 2. the cache: reuse it whenever it was built from this init.sh --------
STAMP="$CACHE_DIR/prepared.stamp"
# "KERNEL_PKG INIT_HASH FORMAT": /init comes from this directory, so a changed
# init.sh rebuilds the base; a newer kernel in the archive does not.
init_hash="$(sha256sum "$HERE/init.sh" | cut -c1-16) v1"
if [ -f "$STAMP" ] && [ -f "$CACHE_DIR/base.cpio.gz" ] && [ -f "$CACHE_DIR/vmlinuz" ]; then
    read -r stamp_pkg stamp_rest <"$STAMP" || true
    if [ "$stamp_rest" = "$init_hash" ] &&
        { [ -z "${KTLS_VM_KERNEL_PKG:-}" ] || [ "$KTLS_VM_KERNEL_PKG" = "$stamp_pkg" ]; }; then
        log "cache up to date ($stamp_pkg) in $CACHE_DIR"
        exit 0
    fi
fi

# -- 3. which kernel --------------------------------------------------------
pick_kernel_pkg() {
    if [ -n "${KTLS_VM_KERNEL_PKG:-}" ]; then
        echo "$KTLS_VM_KERNEL_PKG"
        return
    fi
    local dep
    # The exact 6.1 image of this release (bookworm), as the metapackage names it.
    dep=$(apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-amd64\)$/\1/p' | head -n1)
    if [ -n "$dep" ]; then
        echo "$dep"
        return
    fi
    # Another release: any 6.1 image it still carries, newest ABI first...
    dep=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null |
        awk '{print $1}' | sort -t- -k4,4n | tail -n1)
    if [ -n "$dep" ]; then
        echo "$dep"
        return
    fi
    # ...else whatever the metapackage points at (any kernel with tls.ko works;
    # the selftest reports its version and whether it can rekey).
    apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1
}

if ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
    apt_update_once
fi
KPKG=$(pick_kernel_pkg)
[ -n "$KPKG" ] || { apt_update_once; KPKG=$(pick_kernel_pkg); }
[ -n "$KPKG" ] || die "no linux-image package found with apt-cache"

log "kernel package: $KPKG"

# -- 4. download and unpack -------------------------------------------------
DEBS="$CACHE_DIR/debs"
mkdir -p "$DEBS"
download() { # PKG: apt-get download into $DEBS unless a .deb of it is there
    local pkg=$1
    if ! ls "$DEBS/${pkg}"_*.deb >/dev/null 2>&1; then
        log "apt-get download $pkg"
        (cd "$DEBS" && apt-get download -o APT::Sandbox::User=root "$pkg" >&2) || {
            apt_update_once
            (cd "$DEBS" && apt-get download -o APT::Sandbox::User=root "$pkg" >&2)
        }
    fi
    ls "$DEBS/${pkg}"_*.deb | tail -n1
}
kdeb=$(download "$KPKG")
kmoddeb=$(download kmod)

rm -rf "$CACHE_DIR/kernel" "$CACHE_DIR/kmod"
dpkg -x "$kdeb" "$CACHE_DIR/kernel"
dpkg -x "$kmoddeb" "$CACHE_DIR/kmod"

# Debian 12 keeps modules in /lib/modules, Debian 13 in /usr/lib/modules.
MODROOT=""
for d in "$CACHE_DIR/kernel/lib/modules" "$CACHE_DIR/kernel/usr/lib/modules"; do
    [ -d "$d" ] && MODROOT=$d && break
done
[ -n "$MODROOT" ] || die "$KPKG has no lib/modules"
KVER=$(ls "$MODROOT" | head -n1)
TLS_KO=$(find "$MODROOT/$KVER/kernel/net/tls" -name 'tls.ko*' 2>/dev/null | head -n1)
[ -n "$TLS_KO" ] || die "$KPKG has no kernel/net/tls/tls.ko: set KTLS_VM_KERNEL_PKG to one that does"
cp "$CACHE_DIR/kernel/boot/vmlinuz-$KVER" "$CACHE_DIR/vmlinuz"
echo "$KVER" >"$CACHE_DIR/kver"
log "kernel $KVER, $(basename "$TLS_KO")"

# The uncompressed vmlinux boots about 3 s faster under TCG: the xz stream
# starts at the magic FD 37 7A 58 5A 00 inside the bzImage. Optional: run.sh
# falls back to vmlinuz when it is missing.
rm -f "$CACHE_DIR/vmlinux"
off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$CACHE_DIR/vmlinuz" | head -n1 | cut -d: -f1 || true)
if [ -n "$off" ]; then
    tail -c +"$((off + 1))" "$CACHE_DIR/vmlinuz" | xz -dc 2>/dev/null >"$CACHE_DIR/vmlinux.tmp" || true
    if LC_ALL=C head -c 4 "$CACHE_DIR/vmlinux.tmp" | grep -q 'ELF'; then
        mv "$CACHE_DIR/vmlinux.tmp" "$CACHE_DIR/vmlinux"
        log "extracted vmlinux"
    fi
    rm -f "$CACHE_DIR/vmlinux.tmp"
fi
[ -f "$CACHE_DIR/vmlinux" ] || log "no vmlinux extracted; run.sh will boot vmlinuz"

# -- 5. base initramfs ------------------------------------------------------
ROOT="$CACHE_DIR/root"
rm -rf "$ROOT"
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,proc,sys,dev,tmp,run,etc,lib/modules}
cp /bin/busybox "$ROOT/bin/busybox"
# Every applet, at the path busybox itself names (sbin/modprobe included).
for applet in $(/bin/busybox --list-full); do
    [ -e "$ROOT/$applet" ] || ln -s /bin/busybox "$ROOT/$applet"
done

KSRC="$MODROOT/$KVER"
KDST="$ROOT/lib/modules/$KVER"
mkdir -p "$KDST/kernel"
for sub in net/tls crypto arch/x86/crypto lib/crypto; do
    if [ -d "$KSRC/kernel/$sub" ]; then
        mkdir -p "$KDST/kernel/$(dirname "$sub")"
        cp -a "$KSRC/kernel/$sub" "$KDST/kernel/$sub"
    fi
done
cp -a "$KSRC"/modules.builtin* "$KSRC/modules.order" "$KDST/"
# The package ships no modules.dep; the unpacked kmod's depmod makes it.
# kmod picks the tool by the name it is called under, and the package's
# sbin/depmod is an absolute link to /bin/kmod, so link to the unpacked one.
KMOD_BIN=""
for k in "$CACHE_DIR/kmod/bin/kmod" "$CACHE_DIR/kmod/usr/bin/kmod"; do
    [ -x "$k" ] && KMOD_BIN=$k && break
done
[ -n "$KMOD_BIN" ] || die "kmod package has no bin/kmod"
ln -sf "$KMOD_BIN" "$CACHE_DIR/kmod/depmod"
"$CACHE_DIR/kmod/depmod" -b "$ROOT" "$KVER"
[ -s "$KDST/modules.dep" ] || die "depmod produced no modules.dep"

cp "$HERE/init.sh" "$ROOT/init"
chmod 755 "$ROOT/init"

(cd "$ROOT" && find . | LC_ALL=C sort | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) \
    >"$CACHE_DIR/base.cpio.gz.tmp"
mv "$CACHE_DIR/base.cpio.gz.tmp" "$CACHE_DIR/base.cpio.gz"
rm -rf "$ROOT" "$CACHE_DIR/kernel" "$CACHE_DIR/kmod"
echo "$KPKG $init_hash" >"$STAMP"
log "base initramfs $(du -h "$CACHE_DIR/base.cpio.gz" | cut -f1) ready in $CACHE_DIR"
