# bench/lib/systems.sh: mounting and unmounting every system bench/run compares, sourced by it.
#
# mount_sys SYSTEM MNT LOWERS UPPER WORK ZERO
#   LOWERS is a colon-separated list of directories, leftmost on top (overlayfs order); UPPER the
#   writable layer and WORK its work directory (same filesystem). ZERO=1 asks for zero kernel
#   cache timeouts (entry and attribute) where the system has them. Returns non-zero, with the
#   reason in $MOUNT_ERR, when nothing got mounted. Run it in the current shell, not a subshell.
# umount_sys MNT            unmounts whatever is at MNT (lazy as the last resort)
# daemon_pid SYSTEM MNT     the pid of the daemon serving MNT (empty for the kernel)
#
# Systems: kernel lamina-pt lamina-auto lamina-off lamina-untracked fuse-overlayfs unionfs-fuse mergerfs
#   lamina-*        ./lamina mount -o lowerdir=...,upperdir=...,workdir=...,passthrough=on|auto|off[,timeout=0]
#                   (lamina-untracked: passthrough=auto,tracking=off)
#   kernel          mount -t overlay; lowerdir given relative to the lowers' common parent when
#                   that keeps the option under a page (500 layers), see mount_kernel
#   fuse-overlayfs  fuse-overlayfs -o lowerdir=...,upperdir=...,workdir=...[,timeout=0]
#   unionfs-fuse    unionfs-fuse -o cow,allow_other[,entry_timeout=0,attr_timeout=0] UPPER=RW:L1=RO:... MNT
#   mergerfs        mergerfs -o allow_other,category.create=ff[,cache.attr=0,cache.entry=0] UPPER=RW:L1=RO:... MNT
#                   (no copy-up: the copy-up row skips it)

: "${LAMINA:?the lamina command (bench/run builds it once and sets this)}" "${LOGDIR:?}"
MOUNT_ERR=""

# unionfs-fuse and mergerfs take branches as DIR=MODE:DIR=MODE; colons inside a path are not
# expected here (bench/run makes every path itself).
branches_rw_ro() {
    local upper=$1 lowers=$2 out="$upper=RW" l
    IFS=: read -r -a ls <<<"$lowers"
    for l in "${ls[@]}"; do out+=":$l=RO"; done
    printf '%s' "$out"
}

# Kernel overlayfs: the whole option string must fit in one page (4096 bytes). With hundreds of
# layers, mount from the layers' common parent with relative lowerdir names (mount(8) hands them
# to the kernel, which resolves them against the caller's working directory).
mount_kernel() {
    local mnt=$1 lowers=$2 upper=$3 work=$4 opts
    opts="lowerdir=$lowers,upperdir=$upper,workdir=$work"
    if [ ${#opts} -lt 3800 ]; then
        mount -t overlay overlay -o "$opts" "$mnt" 2>"$LOGDIR/mount.err"
        return
    fi
    local parent rel="" l
    IFS=: read -r -a ls <<<"$lowers"
    parent=$(dirname "${ls[0]}")
    for l in "${ls[@]}"; do
        [ "$(dirname "$l")" = "$parent" ] || { echo "lowerdir too long and layers not siblings" >"$LOGDIR/mount.err"; return 1; }
        rel+="${rel:+:}$(basename "$l")"
    done
    opts="lowerdir=$rel,upperdir=$upper,workdir=$work"
    (cd "$parent" && mount -t overlay overlay -o "$opts" "$mnt") 2>"$LOGDIR/mount.err"
}

mount_sys() {
    local sys=$1 mnt=$2 lowers=$3 upper=$4 work=$5 zero=${6:-0} rc=0
    MOUNT_ERR=""
    mkdir -p "$mnt"
    : >"$LOGDIR/mount.err"
    case "$sys" in
        kernel) mount_kernel "$mnt" "$lowers" "$upper" "$work" || rc=$? ;;
        lamina-pt|lamina-auto|lamina-off|lamina-untracked)
            local pt=${sys#lamina-} extra=""; [ "$pt" = pt ] && pt=on
            [ "$pt" = untracked ] && { pt=auto; extra=",tracking=off"; }
            # Default timeouts unless zero ones are asked for: Lamina's defaults are what is measured.
            "$LAMINA" mount -o "lowerdir=$lowers,upperdir=$upper,workdir=$work,passthrough=$pt$extra$([ "$zero" = 1 ] && echo ,timeout=0)" \
                "$mnt" >"$LOGDIR/mount.out" 2>"$LOGDIR/mount.err" || rc=$? ;;
        fuse-overlayfs)
            local o="lowerdir=$lowers,upperdir=$upper,workdir=$work"
            [ "$zero" = 1 ] && o+=",timeout=0"
            fuse-overlayfs -o "$o" "$mnt" >"$LOGDIR/mount.out" 2>"$LOGDIR/mount.err" || rc=$? ;;
        unionfs-fuse)
            local o="cow,allow_other"
            [ "$zero" = 1 ] && o+=",entry_timeout=0,attr_timeout=0,negative_timeout=0"
            unionfs-fuse -o "$o" "$(branches_rw_ro "$upper" "$lowers")" "$mnt" >"$LOGDIR/mount.out" 2>"$LOGDIR/mount.err" || rc=$? ;;
        mergerfs)
            local o="allow_other,category.create=ff,fsname=mergerfs-bench"
            [ "$zero" = 1 ] && o+=",cache.attr=0,cache.entry=0,cache.negative_entry=0"
            mergerfs -o "$o" "$(branches_rw_ro "$upper" "$lowers")" "$mnt" >"$LOGDIR/mount.out" 2>"$LOGDIR/mount.err" || rc=$? ;;
        *) MOUNT_ERR="unknown system $sys"; return 1 ;;
    esac
    if [ "$rc" != 0 ] || ! mountpoint -q "$mnt"; then
        MOUNT_ERR="$sys: mount failed (exit $rc): $(head -c 400 "$LOGDIR/mount.err" | tr '\n' ' ')"
        return 1
    fi
}

umount_sys() {
    local mnt=$1 i
    for i in 1 2 3 4 5; do
        mountpoint -q "$mnt" || return 0
        case "$(findmnt -no FSTYPE "$mnt" 2>/dev/null | tail -1)" in
            fuse.lamina*|fuse.Lamina*|*lamina*) "$LAMINA" umount "$mnt" >/dev/null 2>&1 || umount "$mnt" 2>/dev/null ;;
            overlay) umount "$mnt" 2>/dev/null ;;
            *) fusermount3 -u "$mnt" 2>/dev/null || fusermount -u "$mnt" 2>/dev/null || umount "$mnt" 2>/dev/null ;;
        esac
        mountpoint -q "$mnt" || return 0
        sleep 0.5
    done
    umount -l "$mnt" 2>/dev/null || true
}

daemon_pid() {
    local sys=$1 mnt=$2
    case "$sys" in
        kernel) echo "" ;;
        lamina-*) "$LAMINA" status "$mnt" 2>/dev/null | awk '/^ *pid:/ {print $2; exit}' ;;
        *) pgrep -f -- " $mnt\$" | head -1 ;;
    esac
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
