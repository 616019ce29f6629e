#!/usr/bin/env bash
# Builds the container images Assay's tests and benchmarks use, without a registry: root file
# systems from Debian packages, `podman import`ed under localhost/. Images already present are
# kept; the debootstrap tarball is cached in ${ASSAY_TEST_CACHE:-~/.cache/assay-test}.
#
#   scripts/container-images.sh        # needs podman, busybox-static, debootstrap; CONTAINERS_CONF set
#
#   localhost/assay-tiny:1   busybox (static) only: sh, wget, httpd, dd ... (~1 MB)
#   localhost/assay-web:1    the same, ENTRYPOINT busybox httpd on :8080 serving /www (a service
#                            started by its image's entrypoint)
#   localhost/assay-py:1     Debian bookworm minbase + python3 + curl (debootstrap, ~270 MB)
#
# The tiny image is also tagged as the busybox Assay's container runtime uses for processes
# without an image (Testkube's default) and as the alpine tags of the Testkube workflows the
# conformance test runs (they only need a POSIX shell).
set -euo pipefail
cache=${ASSAY_TEST_CACHE:-$HOME/.cache/assay-test}
mkdir -p "$cache"
tag=1

have() { podman image exists "$1"; }

busybox_rootfs() {
    local dir=$1 applet
    rm -rf "$dir"
    mkdir -p "$dir/bin" "$dir/tmp" "$dir/etc" "$dir/www" "$dir/data"
    chmod 1777 "$dir/tmp"
    cp /usr/bin/busybox "$dir/bin/busybox"
    for applet in $(/usr/bin/busybox --list); do
        [[ $applet == busybox ]] || ln -s busybox "$dir/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' >"$dir/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
    echo 'hello from assay-web' >"$dir/www/index.html"
}

if ! have localhost/assay-tiny:$tag || ! have localhost/assay-web:$tag; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    busybox_rootfs "$work/rootfs"
    tar -C "$work/rootfs" -cf "$work/tiny.tar" .
    podman import -q --change 'ENV PATH=/bin' "$work/tiny.tar" localhost/assay-tiny:$tag >/dev/null
    podman import -q --change 'ENV PATH=/bin' \
        --change 'ENTRYPOINT ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]' \
        "$work/tiny.tar" localhost/assay-web:$tag >/dev/null
fi

for alias in docker.io/library/busybox:1.36.1-musl docker.io/library/alpine:3.23.2 \
    docker.io/library/alpine:3.22.0; do
    have "$alias" || podman tag localhost/assay-tiny:$tag "$alias"
done

if ! have localhost/assay-py:$tag; then
    tarball="$cache/bookworm-minbase-python3-curl.tar"
    if [[ ! -s $tarball ]]; then
        mirror=$(grep -rhs '^URIs:' /etc/apt/sources.list.d/ | awk '{print $2}' | grep -m1 -E '/debian/?$' || true)
        mirror=${mirror:-$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)}
        mirror=${mirror:-http://deb.debian.org/debian}
        root=$(mktemp -d)
        debootstrap --variant=minbase --include=python3,curl bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
            { echo "container-images.sh: debootstrap failed; see $cache/debootstrap.log" >&2; exit 1; }
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
        tar -C "$root" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
        rm -rf "$root"
    fi
    podman import -q --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        "$tarball" localhost/assay-py:$tag >/dev/null
fi
