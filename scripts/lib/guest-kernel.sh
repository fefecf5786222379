# Guest kernel and initramfs for the VM bench, built from Debian's packages
# and cached under one folder ($DMAKIT_CACHE) so a second run fetches nothing.
# Sourced by scripts/vm; functions print the path they produce on stdout and
# their diagnostics on stderr.

# Kernel modules the guest loads, by group. Order does not matter: the host's
# modprobe resolves dependencies against the unpacked package.
DMAKIT_GUEST_MODULES_BASE="virtio_pci 9pnet_virtio 9p vfio-pci"
# The kernel's own NVMe driver, the peer for the NVMe tests and benchmark.
DMAKIT_GUEST_MODULES_NVME="nvme crct10dif_generic"

# The versioned image package linux-image-amd64 depends on, or nothing.
dmakit_kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}

# dmakit_guest_kernel CACHE -> prints the folder with vmlinuz and lib/modules.
dmakit_guest_kernel() {
    local cache=$1 pkg version dir
    # linux-image-amd64 is the metapackage; it depends on the versioned image.
    pkg=$(dmakit_kernel_package)
    if [[ -z $pkg && $(id -u) == 0 ]]; then
        # A fresh machine may have no package lists yet.
        apt-get update -qq >&2 || true
        pkg=$(dmakit_kernel_package)
    fi
    if [[ -z $pkg ]]; then
        # No package lists (apt-get update never ran): fall back to what is cached.
        dir=$(ls -d "$cache"/kernel/*/ 2>/dev/null | sort -V | tail -n 1)
        if [[ -n $dir && -f $dir/vmlinuz ]]; then echo "${dir%/}"; return 0; fi
        echo "scripts/vm: cannot resolve linux-image-amd64; run: apt-get update" >&2
        return 1
    fi
    version=${pkg#linux-image-}
    dir=$cache/kernel/$version
    if [[ -f $dir/vmlinuz && -f $dir/lib/modules/$version/modules.dep ]]; then
        echo "$dir"; return 0
    fi
    mkdir -p "$cache/debs" "$dir.tmp"
    local deb
    deb=$(ls "$cache"/debs/"$pkg"_*.deb 2>/dev/null | tail -n 1)
    if [[ -z $deb ]]; then
        echo "scripts/vm: downloading the guest kernel ($pkg) into $cache/debs" >&2
        (cd "$cache/debs" && apt-get download "$pkg" >&2 2>/dev/null) ||
            { echo "scripts/vm: apt-get download $pkg failed; check apt sources or run apt-get update" >&2; return 1; }
        deb=$(ls "$cache"/debs/"$pkg"_*.deb | tail -n 1)
    fi
    dpkg -x "$deb" "$dir.tmp" || { echo "scripts/vm: cannot unpack $deb" >&2; return 1; }
    depmod -b "$dir.tmp" "$version" || { echo "scripts/vm: depmod failed (apt-get install kmod)" >&2; return 1; }
    cp "$dir.tmp/boot/vmlinuz-$version" "$dir.tmp/vmlinuz"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
    echo "$dir"
}

# Prints the ordered .ko paths (relative to the kernel folder) for modules $3...
dmakit_module_paths() {
    local dir=$1 version=$2; shift 2
    local m
    for m in "$@"; do
        modprobe -d "$dir" -S "$version" --show-depends "$m" || return 1
    done | awk '$1 == "insmod" {print $2}' | sed "s|^$dir/||" | awk '!seen[$0]++'
}

# dmakit_guest_initramfs CACHE KERNEL_DIR INIT_SCRIPT -> prints the initramfs path.
dmakit_guest_initramfs() {
    local cache=$1 dir=$2 init=$3 version key out staging
    version=$(basename "$dir")
    key=$(cat "$init" "${BASH_SOURCE[0]}" /bin/busybox | sha256sum | cut -c1-16)
    out=$cache/initramfs/$version-$key.cpio.gz
    if [[ -f $out ]]; then echo "$out"; return 0; fi
    staging=$(mktemp -d)
    mkdir -p "$staging"/{bin,dev,proc,sys,host,results,etc/dmakit} "$(dirname "$out")"
    cp /bin/busybox "$staging/bin/busybox"
    cp "$init" "$staging/init"
    chmod 755 "$staging/init"
    local group list path
    for group in BASE NVME; do
        list=DMAKIT_GUEST_MODULES_$group
        # shellcheck disable=SC2086
        dmakit_module_paths "$dir" "$version" ${!list} > "$staging/etc/dmakit/modules.${group,,}" ||
            { echo "scripts/vm: cannot resolve guest modules ($group)" >&2; rm -rf "$staging"; return 1; }
        while read -r path; do
            mkdir -p "$staging/$(dirname "$path")"
            cp "$dir/$path" "$staging/$path"
        done < "$staging/etc/dmakit/modules.${group,,}"
    done
    (cd "$staging" && find . | cpio -o -H newc --quiet | gzip -1) > "$out.tmp" &&
        mv "$out.tmp" "$out"
    rm -rf "$staging"
    echo "$out"
}
