#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Fetch a package from another Debian suite (sid, bookworm-backports) without
# touching the system's apt sources: a private apt configuration (its own
# sources list, lists and cache, signatures checked against Debian's archive
# keyring) runs `apt-get download`, and the package is unpacked with
# `dpkg -x`. Nothing is installed.
#
# usage: debian-pkg.sh [--source] SUITE PACKAGE
# Prints the directory the package was unpacked into:
#   $MTTY_CACHE/pkg/SUITE/PACKAGE_VERSION/   (usr/..., as in the .deb)
# With --source, the source package's files instead (.dsc, orig and debian
# tarballs; `apt-get source --download-only`), in
#   $MTTY_CACHE/pkg/SUITE/src-PACKAGE_VERSION/
# A package already unpacked at the suite's current version is not fetched
# again; with MTTY_OFFLINE=1 the newest one unpacked is used without asking
# the archive.
set -euo pipefail

src=0
[ "${1:-}" = --source ] && { src=1; shift; }
[ $# -eq 2 ] || { sed -n '10,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
suite=$1 pkg=$2
pfx=
[ $src = 1 ] && pfx=src-
if [ -z "${MTTY_CACHE:-}" ]; then
	if [ -w /var/cache ] || [ -w /var/cache/mtty-mig ]; then
		MTTY_CACHE=/var/cache/mtty-mig
	else
		MTTY_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/mtty-mig
	fi
fi
base=$MTTY_CACHE/pkg/$suite
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || { echo "debian-pkg: $keyring missing (debian-archive-keyring)" >&2; exit 1; }
mkdir -p "$base/apt/lists/partial" "$base/apt/cache/archives/partial" "$base/dl"

exec 8>"$base/.lock"
flock 8

if [ "${MTTY_OFFLINE:-0}" = 1 ]; then
	d=$(find "$base" -maxdepth 1 -type d -name "$pfx${pkg}_*" ! -name '*.tmp' | sort -V | tail -n1)
	[ -n "$d" ] || { echo "debian-pkg: $pkg ($suite) not in the cache and MTTY_OFFLINE=1" >&2; exit 1; }
	echo "$d"
	exit 0
fi

stamp=$base/apt/updated
list="deb [signed-by=$keyring] http://deb.debian.org/debian $suite main
deb-src [signed-by=$keyring] http://deb.debian.org/debian $suite main"
if [ "$(cat "$base/apt/sources.list" 2>/dev/null)" != "$list" ]; then
	echo "$list" >"$base/apt/sources.list"
	rm -f "$stamp"
fi
apt=(-o "Dir::Etc::SourceList=$base/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
	-o "Dir::State::Lists=$base/apt/lists" -o "Dir::Cache=$base/apt/cache"
	-o Dir::State::status=/dev/null -o APT::Sandbox::User=root -o Debug::NoLocking=1)
# the lists are refreshed at most once an hour
if [ -z "$(find "$stamp" -mmin -60 2>/dev/null)" ]; then
	apt-get "${apt[@]}" -qq update >&2 || { echo "debian-pkg: apt-get update of $suite failed" >&2; exit 1; }
	touch "$stamp"
fi
if [ $src = 1 ]; then
	ver=$(apt-cache "${apt[@]}" showsrc "$pkg" 2>/dev/null | sed -n 's/^Version: //p' | sort -V | tail -n1)
	[ -n "$ver" ] || { echo "debian-pkg: $suite has no source package $pkg" >&2; exit 1; }
	dir=$base/src-${pkg}_$ver
	if [ ! -d "$dir" ]; then
		rm -rf "$dir.tmp"
		mkdir -p "$dir.tmp"
		(cd "$dir.tmp" && apt-get "${apt[@]}" -qq --download-only source "$pkg=$ver" >&2) ||
			{ echo "debian-pkg: download of source $pkg=$ver ($suite) failed" >&2; exit 1; }
		mv "$dir.tmp" "$dir"
	fi
	echo "$dir"
	exit 0
fi
ver=$(apt-cache "${apt[@]}" show --no-all-versions "$pkg" 2>/dev/null | sed -n 's/^Version: //p' | head -n1)
[ -n "$ver" ] || { echo "debian-pkg: $suite has no package $pkg" >&2; exit 1; }
dir=$base/${pkg}_$ver
if [ ! -d "$dir" ]; then
	rm -f "$base"/dl/*.deb
	(cd "$base/dl" && apt-get "${apt[@]}" -qq download "$pkg=$ver" >&2) ||
		{ echo "debian-pkg: download of $pkg=$ver ($suite) failed" >&2; exit 1; }
	rm -rf "$dir.tmp"
	dpkg -x "$base"/dl/*.deb "$dir.tmp"
	rm -f "$base"/dl/*.deb
	mv "$dir.tmp" "$dir"
fi
echo "$dir"
