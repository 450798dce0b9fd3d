#!/usr/bin/env bash
# bench/lib/report.sh RAW META ERRS OUTDIR STAMP: turns bench/run's samples into OUTDIR/STAMP.md
# and one PNG bar chart per group (OUTDIR/STAMP-GROUP.png, gnuplot, when it is installed).
#
# RAW lines: row<TAB>system<TAB>rep<TAB>value. Every table gives median, min and max over the
# repetitions and the ratio to kernel overlayfs and to fuse-overlayfs, written so that above 1
# always means better for the system in that line (faster, or less memory): value/ref for rates,
# ref/value for times and memory.
set -euo pipefail
raw=$1 meta=$2 errs=$3 outdir=$4 stamp=$5
md="$outdir/$stamp.md"
systems="kernel lamina-pt lamina-auto lamina-off lamina-untracked fuse-overlayfs unionfs-fuse mergerfs"

# row|group|unit|hi or lo|what
rows() {
    cat <<'EOF'
seq-write|data|MiB/s|hi|sequential write of a new file (1 MiB blocks, lands in the upper layer; timed to close, fsync not timed)
seq-read-upper|data|MiB/s|hi|sequential read (1 MiB blocks) of that file in the upper layer, caches dropped first
seq-read-lower|data|MiB/s|hi|sequential read (1 MiB blocks) of a file in the lower layer, caches dropped first
seq-read-lower-warm|data|MiB/s|hi|the same lower file read again at once (page cache warm)
rand-read-warm|random|IOPS|hi|4 KiB preads at random offsets of the lower file, page cache warm
rand-read-cold|random|IOPS|hi|4 KiB preads at random offsets of the lower file, caches dropped first
copy-up|copyup|ms|lo|first write to a lower file: open(O_WRONLY) + 1-byte pwrite + close (lower file in page cache)
stat-cold|stat|s|lo|lstat of every file of the 5-layer tree, fresh mount, caches dropped
stat-warm|stat|s|lo|the same again at once (default cache timeouts)
stat-zero-timeout|stat|s|lo|the same with zero entry/attr timeouts, second pass (every lstat reaches the daemon; kernel overlayfs has no timeouts: its warm figure)
create|files|s|lo|create small files (100 bytes, O_CREAT+O_EXCL) in a new directory
list|files|s|lo|readdir of that directory
delete|files|s|lo|unlink every one of them
readdir-cold|readdir|s|lo|readdir of one directory merged from 3 layers (overlapping names), caches dropped
readdir-warm|readdir|s|lo|the same again at once
find|tree|s|lo|find -type f over the 5-layer tree, fresh mount, branches' caches warm
tar|tree|s|lo|tar c of the whole tree into a pipe, same mount
lookup-depth-1|depth|µs/lookup|lo|lstat of files that exist only in the bottom layer of a 1-layer stack (fresh mount, branches warm)
lookup-depth-10|depth|µs/lookup|lo|the same at the bottom of 10 layers
lookup-depth-100|depth|µs/lookup|lo|the same at the bottom of 100 layers
lookup-depth-500|depth|µs/lookup|lo|the same at the bottom of 500 layers
rss-after-walk|memory|MiB|lo|resident memory of the daemon after find and tar over the tree (kernel: n/a)
coherence-name-p50|coherence|ms|lo|a name made directly in the lower layer, missing through the mount just before: until stat finds it (median; 2000 = never)
coherence-name-p99|coherence|ms|lo|the same, 99th percentile
coherence-data-p50|coherence|ms|lo|the lower file rewritten in place, read through the mount just before: until a read returns the new bytes (median; 2000 = never)
coherence-data-p99|coherence|ms|lo|the same, 99th percentile
EOF
}

# stats: "row system n median min max" for every pair that has samples
stats=$(awk -F'\t' '{ v[$1 SUBSEP $2] = v[$1 SUBSEP $2] " " $4 }
    END { for (k in v) { split(k, p, SUBSEP); n = split(substr(v[k], 2), a, " ");
          for (i = 2; i <= n; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] + 0 > x + 0) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
          med = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2;
          print p[1], p[2], n, med, a[1], a[n] } }' "$raw")
get() { awk -v r="$1" -v s="$2" -v f="$3" '$1 == r && $2 == s { print $f; found = 1 } END { if (!found) print "" }' <<<"$stats"; }
ratio() { # ratio VALUE REF DIR -> better-is-above-1 ratio
    awk -v v="$1" -v r="$2" -v d="$3" 'BEGIN { if (v == "" || r == "" || v + 0 == 0 || r + 0 == 0) { print "–"; exit }
        printf "%.2f\n", (d == "hi") ? v / r : r / v }'
}
fmt() { awk -v v="$1" 'BEGIN { if (v == "") print "–"; else if (v + 0 >= 100) printf "%.0f\n", v; else if (v + 0 >= 10) printf "%.1f\n", v; else printf "%.3g\n", v }'; }
metav() { sed -n "s/^$1=//p" "$meta"; }

{
    echo "# Lamina benchmark, $(metav date)"
    echo
    echo "Mode: **$(metav mode)**, $(metav reps) repetition(s), median / min / max over them. Machine: $(metav cpu), $(metav memory), kernel $(metav kernel), branches on $(metav backing)."
    echo "Load average before / after the run: $(metav load_before) / $(metav load_after) (shared machine)."
    echo "Lamina $(metav lamina_commit); fuse-overlayfs $(metav fuse_overlayfs), unionfs-fuse $(metav unionfs_fuse), mergerfs $(metav mergerfs) (Debian)."
    echo "Sizes: $(metav sizes)."
    echo "Build $(metav seconds_build) s, run $(metav seconds_run) s."
    echo
    echo "Ratios: above 1 is better for the system in the line (rates: value / reference; times and memory: reference / value)."
    echo
    if [ -s "$errs" ]; then
        echo "## Problems in this run"
        echo
        sed 's/^/- /' "$errs"
        echo
    fi

    echo "## Summary (medians)"
    echo
    echo "| workload | unit | $(echo $systems | sed 's/ / | /g') |"
    echo "| --- | --- |$(for s in $systems; do printf ' ---: |'; done)"
    while IFS='|' read -r row group unit dir what; do
        [ -n "$(awk -v r="$row" '$1 == r' <<<"$stats")" ] || continue
        line="| $row | $unit$([ "$dir" = hi ] && echo ' ↑' || echo ' ↓') |"
        for s in $systems; do line+=" $(fmt "$(get "$row" "$s" 4)") |"; done
        echo "$line"
    done < <(rows)
    echo
    echo "## Targets"
    echo
    echo "| target | workload | ratio | met |"
    echo "| --- | --- | --- | --- |"
    target() { # target LABEL ROW SYS REF MIN
        local v r d q
        v=$(get "$2" "$3" 4); r=$(get "$2" "$4" 4); d=$(rows | awk -F'|' -v r="$2" '$1 == r { print $4 }')
        q=$(ratio "$v" "$r" "$d")
        local ok="n/a"; [ "$q" != "–" ] && ok=$(awk -v q="$q" -v m="$5" 'BEGIN { print (q + 0 >= m) ? "yes" : "**no**" }')
        echo "| $1 | $2 | $q | $ok |"
    }
    while IFS='|' read -r row group unit dir what; do
        case "$row" in seq-read-lower*|rand-read-*) target "lamina-auto (default mode) ≥ 0.95× kernel, lower reads" "$row" lamina-auto kernel 0.95 ;; esac
    done < <(rows)
    while IFS='|' read -r row group unit dir what; do
        case "$row" in stat-warm|readdir-warm|list|tar) target "lamina-auto (default mode) ≥ 1.0× fuse-overlayfs, warm metadata" "$row" lamina-auto fuse-overlayfs 1.0 ;; esac
    done < <(rows)
    if [ -n "$(get find lamina-untracked 4)" ]; then
        target "lamina-auto cold walk no slower than without tracking" find lamina-auto lamina-untracked 0.95
    fi
    for s in lamina-auto; do
        for r in coherence-name-p99 coherence-data-p99; do
            v=$(get "$r" "$s" 4)
            [ -n "$v" ] && echo "| $s: direct change visible, p99 ≤ 100 ms | $r | $v ms | $(awk -v v="$v" 'BEGIN { print (v + 0 <= 100) ? "yes" : "**no**" }') |"
        done
    done
    while IFS='|' read -r row group unit dir what; do
        case "$group" in data|random) target "lamina-pt ≥ 0.95× kernel" "$row" lamina-pt kernel 0.95 ;; esac
    done < <(rows)
    while IFS='|' read -r row group unit dir what; do
        target "lamina-off ≥ 1.0× fuse-overlayfs" "$row" lamina-off fuse-overlayfs 1.0
    done < <(rows)
    while IFS='|' read -r row group unit dir what; do
        case "$group" in stat|files|readdir|tree|depth) target "lamina-auto ≥ 1.5× fuse-overlayfs (metadata)" "$row" lamina-auto fuse-overlayfs 1.5 ;; esac
    done < <(rows)
    for s in lamina-pt lamina-auto lamina-off kernel fuse-overlayfs; do
        a=$(get lookup-depth-1 "$s" 4); b=$(get lookup-depth-500 "$s" 4)
        [ -n "$b" ] || b=$(get lookup-depth-100 "$s" 4) deep=100
        if [ -n "$a" ] && [ -n "$b" ]; then
            q=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }')
            if [ "${s#lamina}" != "$s" ]; then ok=$(awk -v q="$q" 'BEGIN { print (q <= 1.2) ? "yes" : "**no**" }'); else ok="(peer)"; fi
            echo "| $s: lookup at ${deep:-500} layers ≤ 1.2× at 1 (cost ratio, lower is better) | lookup-depth | $q | $ok |"
        fi
        unset deep
    done
    for s in lamina-pt lamina-auto lamina-off; do
        target "$s memory ≤ fuse-overlayfs" rss-after-walk "$s" fuse-overlayfs 1.0
    done
    echo

    group_prev=""
    while IFS='|' read -r row group unit dir what; do
        have=$(awk -v r="$row" '$1 == r' <<<"$stats")
        [ -n "$have" ] || continue
        if [ "$group" != "$group_prev" ]; then
            echo "## $group"
            echo
            echo "![$group]($stamp-$group.png)"
            echo
            group_prev=$group
        fi
        echo "### $row ($unit, $([ "$dir" = hi ] && echo 'higher is better' || echo 'lower is better'))"
        echo
        echo "$what."
        echo
        echo "| system | median | min | max | n | vs kernel | vs fuse-overlayfs |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
        for s in $systems; do
            m=$(get "$row" "$s" 4)
            [ -n "$m" ] || continue
            echo "| $s | $(fmt "$m") | $(fmt "$(get "$row" "$s" 5)") | $(fmt "$(get "$row" "$s" 6)") | $(get "$row" "$s" 3) | $(ratio "$m" "$(get "$row" kernel 4)" "$dir") | $(ratio "$m" "$(get "$row" fuse-overlayfs 4)" "$dir") |"
        done
        echo
    done < <(rows)
} >"$md"

# Charts: one per group, clustered bars (rows x systems), medians. One colour per system in
# every chart.
color() {
    case "$1" in
        kernel) echo '#555555' ;; lamina-pt) echo '#1b7837' ;; lamina-auto) echo '#5aae61' ;;
        lamina-off) echo '#a6dba0' ;; fuse-overlayfs) echo '#e08214' ;; unionfs-fuse) echo '#8073ac' ;;
        mergerfs) echo '#2166ac' ;; *) echo '#999999' ;;
    esac
}
plotcols() {
    local dat=$1 c=2 s out=""
    for s in $(head -1 "$dat" | cut -d' ' -f2-); do
        out+="${out:+, }\"$dat\" every ::1 using $c:xtic(1) title \"$s\" lc rgb \"$(color "$s")\""
        c=$((c + 1))
    done
    printf '%s' "$out"
}
command -v gnuplot >/dev/null || { echo "report: gnuplot missing, no charts" >&2; exit 0; }
for group in $(rows | cut -d'|' -f2 | uniq); do
    dat="$outdir/.$stamp-$group.dat"
    present=""
    grows=" $(rows | awk -F'|' -v g="$group" '$2 == g { printf "%s ", $1 }')"
    for s in $systems; do
        [ -n "$(awk -v s="$s" -v gr="$grows" '$2 == s && index(gr, " " $1 " ")' <<<"$stats")" ] && present+="$s "
    done
    {
        echo "row $present"
        while IFS='|' read -r row g unit dir what; do
            [ "$g" = "$group" ] || continue
            # Short tick labels, so that four or five groups fit side by side.
            line=$(sed -e 's/^lookup-depth-\(.*\)/\1-layers/' -e 's/^seq-//' <<<"$row"); any=0
            for s in $present; do
                m=$(get "$row" "$s" 4); [ -n "$m" ] && any=1
                line+=" ${m:-NaN}"
            done
            [ "$any" = 1 ] && echo "$line"
        done < <(rows)
    } >"$dat"
    [ "$(wc -l <"$dat")" -gt 1 ] || { rm -f "$dat"; continue; }
    unit=$(rows | awk -F'|' -v g="$group" '$2 == g { print $3 " (" ($4 == "hi" ? "higher is better" : "lower is better") ")"; exit }')
    ncol=$(awk 'NR == 1 { print NF }' "$dat")
    # Values spanning more than 20x: a log scale, so the small bars stay visible.
    scale=$(awk 'NR > 1 { for (i = 2; i <= NF; i++) if ($i != "NaN" && $i > 0) { if (!lo || $i < lo) lo = $i; if ($i > hi) hi = $i } }
        END { if (lo > 0 && hi / lo > 20) print "set logscale y; set yrange [*:*]"; else print "set yrange [0:*]" }' "$dat")
    gnuplot <<EOF 2>/dev/null || echo "report: gnuplot failed for $group" >&2
set terminal pngcairo size 760,330 font "sans,9"
set output "$outdir/$stamp-$group.png"
set title "$group: median of $(metav reps) run(s), $(metav mode) mode$(case "$scale" in *log*) echo ', log scale' ;; esac)"
set ylabel "$unit"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top vertical
set grid ytics
$scale
set xtics noenhanced
set key noenhanced
plot $(plotcols "$dat")
EOF
    rm -f "$dat"
done
