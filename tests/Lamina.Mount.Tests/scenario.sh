#!/bin/sh
# Runs the same operations on a merged directory and prints the resulting tree, so kernel
# overlayfs and Lamina can be compared line by line. Usage: scenario.sh MERGED
set -e
cd "$1"
echo appended >> base.txt
rm top.txt
mkdir -p newdir/inner
echo new > newdir/inner/file
mv dir renamed
rm renamed/a.txt
ln -s base.txt link
ln base.txt hardlink
chmod 600 shadowed.txt
mkdir emptydir && rmdir emptydir
touch -d @1000000000 newdir/inner/file
# The tree: type, mode, size, link count, target or content checksum; no inode numbers (they differ).
find . -mindepth 1 | LC_ALL=C sort | while read -r p; do
  if [ -L "$p" ]; then echo "$p link -> $(readlink "$p")";
  elif [ -d "$p" ]; then echo "$p dir $(stat -c '%a' "$p")";
  else echo "$p file $(stat -c '%a %s %h' "$p") $(md5sum < "$p" | cut -c1-8)"; fi
done
stat -c '%Y' newdir/inner/file
