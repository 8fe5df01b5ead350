#!/bin/bash
# Functions run through `attempt NAME FUNCTION ...` and the EXIT trap are called indirectly:
# shellcheck disable=SC2317
# Drive zram devices through their life cycle the way distribution scripts (zram-generator,
# zramctl, the Debian/Fedora swap units) and test suites (LTP's zram01-03) drive the kernel's zram:
# hot_add, configure, mkswap/swapon, mkfs/mount/fill, reset, hot_remove, and the errors the kernel
# gives for what it refuses.
#
# Paths come only from three prefixes (the kernel's by default), so the same script runs against
# the kernel's zram and against zramd:
#   ZRAM_SYSFS    device N's attribute directory is ${ZRAM_SYSFS}N
#   ZRAM_DEV      device N's block device is ${ZRAM_DEV}N
#   ZRAM_CONTROL  the directory holding hot_add and hot_remove
# DEVICES is how many devices are used at once (default 1); WORK is a scratch directory for mount
# points (required). The script writes the ids it got from hot_add to $WORK/ids, one per line, so
# that a caller can clean up after a script that was killed.
#
# Transcript (stdout): one deterministic line per step, "STEP <name>: ok" or "STEP <name>: <ERRNO>"
# (from the failing command's message), or "STEP <name>: yes|no" for a coarse check of numbers.
# Devices are named by ordinal (dev0, dev1, ...; "big" for the sparse 100G one), never by id.
# Raw messages and numbers go to stderr. Exit status: 0 when the script ran to its end, 1 when it
# had to stop early (hot_add failed), 2 for a bad environment.

set -u
export LC_ALL=C

ZRAM_SYSFS=${ZRAM_SYSFS:-/sys/block/zram}
ZRAM_DEV=${ZRAM_DEV:-/dev/zram}
ZRAM_CONTROL=${ZRAM_CONTROL:-/sys/class/zram-control}
DEVICES=${DEVICES:-1}
WORK=${WORK:-}

if [ -z "$WORK" ] || [ ! -d "$WORK" ]; then
    echo "WORK must name an existing scratch directory" >&2
    exit 2
fi
case $DEVICES in
    '' | *[!0-9]* | 0) echo "DEVICES must be a positive number, not '$DEVICES'" >&2; exit 2 ;;
esac

ERRFILE=$(mktemp) || exit 2
IDS=()       # IDS[i]: the id hot_add gave device i ("" once it is hot-removed again)
ADDED=()     # ADDED[i]: that id, kept after hot_remove
NAMES=()     # NAMES[i]: its ordinal name in the transcript
ATTEMPT_OUT=''
: >"$WORK/ids"

# --- helpers ----------------------------------------------------------------------------------

sysfs() { printf '%s%s' "$ZRAM_SYSFS" "${IDS[$1]}"; }
blockdev() { printf '%s%s' "$ZRAM_DEV" "${IDS[$1]}"; }
mnt() { printf '%s/mnt%s' "$WORK" "$1"; }

# write_attr FILE VALUE: what `echo VALUE > FILE` does in a distribution script.
write_attr() { echo "$2" >"$1"; }

# Replace what differs between runs (device ids, the scratch directory) in a message.
redact() {
    local msg=$1 i
    for i in "${!IDS[@]}"; do
        [ -n "${IDS[$i]}" ] || continue
        msg=${msg//"$ZRAM_DEV${IDS[$i]}"/"<${NAMES[$i]}>"}
        msg=${msg//"$ZRAM_SYSFS${IDS[$i]}"/"<${NAMES[$i]}.sysfs>"}
    done
    msg=${msg//"$WORK"/"<work>"}
    # bash's own prefix carries a line number; keep only what the failing command said
    msg=$(printf '%s' "$msg" | sed -E 's/^(bash|[^:]*zram_lifecycle\.sh): line [0-9]+: //; s/zram[0-9]+/zramN/g')
    printf '%s' "$msg"
}

# errno_name MESSAGE RC: the errno a failing command's message names.
errno_name() {
    local msg=$1 rc=$2 line
    case $msg in
        *"Device or resource busy"* | *"already mounted or mount point busy"* | \
            *"apparently in use by the system"* | *"contains a mounted filesystem"*) echo EBUSY ;;
        *"Invalid argument"* | *"wrong fs type, bad option, bad superblock"*) echo EINVAL ;;
        *"No such device or address"*) echo ENXIO ;;
        *"No such device"*) echo ENODEV ;;
        *"No space left on device"*) echo ENOSPC ;;
        *"No such file or directory"* | *"does not exist"*) echo ENOENT ;;
        *"Permission denied"* | *"permission denied"*) echo EACCES ;;
        *"Operation not permitted"*) echo EPERM ;;
        *"Cannot allocate memory"*) echo ENOMEM ;;
        *"Input/output error"*) echo EIO ;;
        *"Read-only file system"*) echo EROFS ;;
        *"File exists"*) echo EEXIST ;;
        *"Function not implemented"*) echo ENOSYS ;;
        *"Operation not supported"*) echo EOPNOTSUPP ;;
        *"Inappropriate ioctl for device"*) echo ENOTTY ;;
        *"Resource temporarily unavailable"*) echo EAGAIN ;;
        *"Numerical result out of range"*) echo ERANGE ;;
        *"File too large"*) echo EFBIG ;;
        *"Transport endpoint is not connected"*) echo ENOTCONN ;;
        *)
            line=$(printf '%s\n' "$msg" | sed -n '/[^[:space:]]/{p;q;}')
            if [ -n "$line" ]; then
                echo "FAIL($(redact "$line"))"
            else
                echo "FAIL(exit $rc)"
            fi
            ;;
    esac
}

# attempt NAME CMD...: run CMD (stdin from /dev/null), print "STEP NAME: ok" or the errno its
# error message names; its stdout is left in ATTEMPT_OUT, its status is attempt's.
attempt() {
    local name=$1 rc msg
    shift
    ATTEMPT_OUT=$("$@" 2>"$ERRFILE" </dev/null)
    rc=$?
    msg=$(cat "$ERRFILE")
    if [ "$rc" -eq 0 ]; then
        echo "STEP $name: ok"
    else
        echo "STEP $name: $(errno_name "$msg" "$rc")"
    fi
    if [ -n "$msg" ]; then
        printf '%s (exit %s): %s\n' "$name" "$rc" "$msg" >&2
    fi
    return "$rc"
}

# verdict NAME CONDITION-STATUS DETAIL: a coarse check; DETAIL (the raw numbers) goes to stderr.
verdict() {
    local name=$1 status=$2 detail=$3
    if [ "$status" -eq 0 ]; then echo "STEP $name: yes"; else echo "STEP $name: no"; fi
    printf '%s: %s\n' "$name" "$detail" >&2
}

# Same file (inode), or block device nodes of the same device.
same_file() {
    [ "$(stat -L -c %d:%i -- "$1" 2>/dev/null)" = "$(stat -L -c %d:%i -- "$2" 2>/dev/null)" ] && return 0
    [ -b "$1" ] && [ -b "$2" ] && [ "$(stat -L -c %t:%T -- "$1")" = "$(stat -L -c %t:%T -- "$2")" ]
}

# Whether DEV is an active swap area in /proc/swaps (which lists it under its resolved path).
listed_in_swaps() {
    local file rest
    while read -r file rest; do
        [ "$file" = Filename ] && continue
        same_file "$file" "$1" && return 0
    done </proc/swaps
    return 1
}
in_swaps() {
    listed_in_swaps "$1" && return 0
    echo "not listed in /proc/swaps" >&2
    return 1
}

is_mounted() { mountpoint -q -- "$1"; }
# attempt_mounted I STEP CMD...: attempt STEP when device I's file system is mounted, else say
# the step was skipped
attempt_mounted() {
    local i=$1 step=$2
    shift 2
    if is_mounted "$(mnt "$i")"; then attempt "$step" "$@"; else echo "STEP $step: SKIPPED(not mounted)"; fi
}

# mm_stat DEVICE-INDEX: sets MM_ORIG MM_COMPR MM_USED MM_LIMIT MM_MAX MM_SAME (0 when unreadable).
mm_stat() {
    local rest
    MM_ORIG=0 MM_COMPR=0 MM_USED=0 MM_LIMIT=0 MM_MAX=0 MM_SAME=0
    read -r MM_ORIG MM_COMPR MM_USED MM_LIMIT MM_MAX MM_SAME rest 2>/dev/null <"$(sysfs "$1")/mm_stat"
    [[ $MM_ORIG =~ ^[0-9]+$ && $MM_COMPR =~ ^[0-9]+$ && $MM_USED =~ ^[0-9]+$ ]] || {
        MM_ORIG=0 MM_COMPR=0 MM_USED=0
        return 1
    }
}

# failed_writes DEVICE-INDEX: io_stat's second field (failed writes), "?" when unreadable.
failed_writes() {
    local failed rest
    read -r _ failed rest 2>/dev/null <"$(sysfs "$1")/io_stat" || failed='?'
    printf '%s' "${failed:-?}"
}

# fill FILE: append zeros 1 KiB at a time from one process until a write fails.
fill() { dd if=/dev/zero of="$1" bs=1k oflag=append conv=notrunc status=none; }

# hot_add I NAME: create device I through hot_add; 1 when the kernel gave no id.
hot_add() {
    local i=$1 name=$2 id
    attempt "$name.hot_add" cat "$ZRAM_CONTROL/hot_add" || return 1
    id=$ATTEMPT_OUT
    case $id in '' | *[!0-9]*) echo "hot_add gave '$id', not an id" >&2; return 1 ;; esac
    IDS[i]=$id
    ADDED[i]=$id
    NAMES[i]=$name
    echo "$id" >>"$WORK/ids"
    printf '%s is device %s\n' "$name" "$id" >&2
}

hot_remove() {
    local i=$1
    [ -n "${IDS[$i]:-}" ] || return 0
    attempt "${NAMES[$i]}.hot_remove" write_attr "$ZRAM_CONTROL/hot_remove" "${IDS[$i]}" && IDS[i]=''
}

# --- cleanup: whatever is still set up, in reverse order of creation ---------------------------

cleanup() {
    local i dev dir
    trap - EXIT INT TERM HUP
    for ((i = ${#IDS[@]} - 1; i >= 0; i--)); do
        [ -n "${IDS[$i]:-}" ] || continue
        dev=$(blockdev "$i")
        dir=$(sysfs "$i")
        if is_mounted "$(mnt "$i")"; then
            umount "$(mnt "$i")" 2>/dev/null || umount -l "$(mnt "$i")" 2>/dev/null
        fi
        if listed_in_swaps "$dev"; then swapoff "$dev" 2>/dev/null; fi
        if [ -d "$dir" ]; then
            echo 1 >"$dir/reset" 2>/dev/null
            echo "${IDS[$i]}" >"$ZRAM_CONTROL/hot_remove" 2>/dev/null
        fi
        if [ -d "$dir" ]; then
            printf 'cleanup: could not remove %s (device %s)\n' "${NAMES[$i]}" "${IDS[$i]}" >&2
        else
            printf 'cleanup: removed %s (device %s)\n' "${NAMES[$i]}" "${IDS[$i]}" >&2
        fi
    done
    for ((i = 0; i < DEVICES; i++)); do rmdir "$(mnt "$i")" 2>/dev/null; done
    rm -f "$ERRFILE"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- the devices used together ----------------------------------------------------------------

for ((i = 0; i < DEVICES; i++)); do
    hot_add "$i" "dev$i" || exit 1
done

# swap: configure in the kernel's order (algorithm before disksize; mem_limit any time)
for ((i = 0; i < DEVICES; i++)); do
    d=$(sysfs "$i") n=${NAMES[$i]}
    attempt "$n.comp_algorithm=lz4" write_attr "$d/comp_algorithm" lz4
    attempt "$n.disksize=64M" write_attr "$d/disksize" 64M
    attempt "$n.mem_limit=48M" write_attr "$d/mem_limit" 48M
    size=$(cat "$d/disksize" 2>/dev/null)
    [ "$size" = 67108864 ]
    verdict "$n.disksize_reads_64M" $? "disksize=$size"
done
for ((i = 0; i < DEVICES; i++)); do attempt "${NAMES[$i]}.mkswap" mkswap "$(blockdev "$i")"; done
for ((i = 0; i < DEVICES; i++)); do attempt "${NAMES[$i]}.swapon" swapon "$(blockdev "$i")"; done
for ((i = 0; i < DEVICES; i++)); do attempt "${NAMES[$i]}.in_proc_swaps" in_swaps "$(blockdev "$i")"; done
for ((i = 0; i < DEVICES; i++)); do
    attempt "${NAMES[$i]}.reset_while_swapon" write_attr "$(sysfs "$i")/reset" 1
done
for ((i = 0; i < DEVICES; i++)); do
    attempt "${NAMES[$i]}.disksize_while_initialised" write_attr "$(sysfs "$i")/disksize" 128M
done
for ((i = 0; i < DEVICES; i++)); do
    attempt "${NAMES[$i]}.comp_algorithm_while_initialised" write_attr "$(sysfs "$i")/comp_algorithm" lzo
done
for ((i = 0; i < DEVICES; i++)); do attempt "${NAMES[$i]}.swapoff" swapoff "$(blockdev "$i")"; done
for ((i = 0; i < DEVICES; i++)); do attempt "${NAMES[$i]}.reset_after_swapoff" write_attr "$(sysfs "$i")/reset" 1; done

# bad values, on a reset (uninitialised) device
for ((i = 0; i < DEVICES; i++)); do
    d=$(sysfs "$i") n=${NAMES[$i]}
    attempt "$n.disksize=foo" write_attr "$d/disksize" foo
    attempt "$n.comp_algorithm=nope" write_attr "$d/comp_algorithm" nope
    state=$(cat "$d/initstate" 2>/dev/null)
    [ "$state" = 0 ]
    verdict "$n.still_uninitialised" $? "initstate=$state"
done

# a file system: another algorithm and size, filled with zeros (same-filled pages)
for ((i = 0; i < DEVICES; i++)); do
    d=$(sysfs "$i") n=${NAMES[$i]}
    attempt "$n.comp_algorithm=lzo" write_attr "$d/comp_algorithm" lzo
    attempt "$n.disksize=32M" write_attr "$d/disksize" 32M
    attempt "$n.mem_limit=16M" write_attr "$d/mem_limit" 16M
done
for ((i = 0; i < DEVICES; i++)); do attempt "${NAMES[$i]}.mkfs.ext4" mkfs.ext4 -q -F "$(blockdev "$i")"; done
for ((i = 0; i < DEVICES; i++)); do
    mkdir -p "$(mnt "$i")"
    attempt "${NAMES[$i]}.mount" mount -t ext4 "$(blockdev "$i")" "$(mnt "$i")"
done
# never fill or unmount a directory that is not the device's file system
for ((i = 0; i < DEVICES; i++)); do attempt_mounted "$i" "${NAMES[$i]}.fill_1k_zeros" fill "$(mnt "$i")/zeros"; done
attempt sync sync
for ((i = 0; i < DEVICES; i++)); do
    n=${NAMES[$i]}
    mm_stat "$i"
    [ "$MM_ORIG" -ge $((16 << 20)) ]
    verdict "$n.orig_data_size>=16M" $? "orig_data_size=$MM_ORIG"
    [ "$MM_ORIG" -gt 0 ] && [ "$MM_ORIG" -ge $((10 * MM_COMPR)) ]
    verdict "$n.ratio>=10" $? "orig_data_size=$MM_ORIG compr_data_size=$MM_COMPR same_pages=$MM_SAME"
    [ "$MM_USED" -le $((16 << 20)) ]
    verdict "$n.mem_used_total<=mem_limit" $? "mem_used_total=$MM_USED mem_limit=$MM_LIMIT mem_used_max=$MM_MAX"
    failed=$(failed_writes "$i")
    [ "$failed" = 0 ]
    verdict "$n.no_failed_writes" $? "failed_writes=$failed"
done
for ((i = 0; i < DEVICES; i++)); do
    attempt "${NAMES[$i]}.reset_while_mounted" write_attr "$(sysfs "$i")/reset" 1
done
for ((i = 0; i < DEVICES; i++)); do attempt_mounted "$i" "${NAMES[$i]}.umount" umount "$(mnt "$i")"; done
for ((i = 0; i < DEVICES; i++)); do attempt "${NAMES[$i]}.reset_after_umount" write_attr "$(sysfs "$i")/reset" 1; done
for ((i = 0; i < DEVICES; i++)); do
    d=$(sysfs "$i")
    mm_stat "$i"
    size=$(cat "$d/disksize" 2>/dev/null)
    [ "$size" = 0 ] && [ "$MM_ORIG" = 0 ]
    verdict "${NAMES[$i]}.empty_after_reset" $? "disksize=$size orig_data_size=$MM_ORIG"
done

attempt hot_remove_99999 write_attr "$ZRAM_CONTROL/hot_remove" 99999

# --- one sparse device: 100G of swap with a 1M memory limit -------------------------------------

big=$DEVICES
if hot_add "$big" big; then
    d=$(sysfs "$big")
    attempt big.disksize=100G write_attr "$d/disksize" 100G
    attempt big.mem_limit=1M write_attr "$d/mem_limit" 1M
    mm_stat "$big"
    [ "$MM_USED" -lt $((1 << 20)) ]
    verdict "big.mem_used_total<1M_after_disksize" $? "mem_used_total=$MM_USED"
    attempt big.mkswap mkswap "$(blockdev "$big")"
    attempt big.swapon swapon "$(blockdev "$big")"
    attempt big.in_proc_swaps in_swaps "$(blockdev "$big")"
    mm_stat "$big"
    [ "$MM_USED" -lt $((1 << 20)) ]
    verdict "big.mem_used_total<1M_after_swapon" $? "mem_used_total=$MM_USED orig_data_size=$MM_ORIG"
    attempt big.swapoff swapoff "$(blockdev "$big")"
    attempt big.reset_after_swapoff write_attr "$d/reset" 1
fi

# --- hot_remove, last device first ------------------------------------------------------------

for ((i = ${#IDS[@]} - 1; i >= 0; i--)); do hot_remove "$i"; done
for ((i = 0; i < ${#ADDED[@]}; i++)); do
    [ ! -e "$ZRAM_SYSFS${ADDED[$i]}" ] && [ ! -e "$ZRAM_DEV${ADDED[$i]}" ]
    verdict "${NAMES[$i]}.gone_after_hot_remove" $? "device ${ADDED[$i]}"
done
exit 0
