#!/usr/bin/env bash
# The Debian package (debian/): `dpkg-buildpackage -b -us -uc` in a copy of
# the working tree (the tree itself gets no build artifacts), then:
#   - the build ran the unit suite and nothing else;
#   - the .deb holds what `meson install` installs (units and udev rules
#     under /lib, Debian 12's place for them; man pages compressed), the
#     copyright and changelog, and nothing more; the CLI is static; Depends,
#     Recommends and the maintainer scripts are as debian/ means them;
#   - installed with `dpkg -i` + `apt-get -f install` into a fresh Debian
#     bookworm chroot (debootstrap minbase + man-db), the dependencies come
#     in, `volmgr --version`, `volmgrd --version` and `man -w` work, units and
#     udev rules are in place and not enabled, each service's ExecStart
#     exists; `dpkg --purge` removes it all again.
# debootstrap needs Debian's mirror and took about two minutes here, so its
# result is kept as a tarball in $VT_CACHE_DIR (default
# /var/cache/volmgr-tests), keyed by suite, variant, package list and
# architecture, beside the chroot's apt lists and downloaded .debs (so that
# later runs need no mirror unless the dependencies change).  Those are the
# only things this test leaves behind; delete them to start afresh.
# shellcheck disable=SC2016 # dpkg-query formats and ${ are meant literally
here=$(dirname "$(readlink -f "$0")")
# shellcheck source=../lib/common.sh
. "$here/../lib/common.sh"

vt_init deb-install
shopt -s extglob
: >"$VT_TMP/.start" # what is newer than this was made by this run
vt_require_root
vt_require_cmd dpkg-buildpackage dpkg-checkbuilddeps dpkg-parsechangelog dpkg-deb \
	dpkg-query meson jq tar sha256sum flock chroot mountpoint readelf
src=$(realpath "$here/../..")
[[ -f $src/debian/control && -f $src/debian/changelog && -f $src/meson.build ]] ||
	vt_fail "no debian/ packaging in $src"
arch=$(dpkg --print-architecture)

# ------------------------------------------------------------ the build
vt_step "a copy of the working tree"
version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
pkgdir=$VT_TMP/pkg # dpkg-buildpackage writes the .debs beside the tree
tree=$pkgdir/volmgr-$version
mkdir -p "$tree"
# What dpkg-buildpackage leaves behind when it runs in a tree: never copied.
is_build_output() {
	[[ $1 == @(obj-*|build*)/* || $1 == debian/@(.debhelper|volmgr|tmp)/* ||
		$1 == debian/@(files|*.substvars|*.debhelper|*.debhelper.log|debhelper-build-stamp) ]]
}
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# Tracked and untracked files, not the ignored ones (/build*/): the
	# working tree as it is, uncommitted changes included (git archive
	# HEAD would miss them).  A tracked file deleted in the tree is left out.
	git -C "$src" ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do
			is_build_output "$f" && continue
			[[ -e $src/$f || -L $src/$f ]] && printf '%s\0' "$f"
		done | sort -zu | tar -C "$src" --null --no-recursion -T - -cf - | tar -C "$tree" -xf -
else
	tar -C "$src" --exclude=./.git --exclude='./build*' --exclude='./obj-*' \
		--exclude=./debian/.debhelper --exclude=./debian/volmgr --exclude=./debian/tmp \
		-cf - . | tar -C "$tree" -xf -
fi
vt_log "copied $(find "$tree" -type f | wc -l) files to $tree"

# Build dependencies (debian/control): missing ones are a skip (a failure
# on CI), with apt's list of what to install.
if ! out=$(cd "$tree" && dpkg-checkbuilddeps 2>&1); then
	vt_skip "${out#dpkg-checkbuilddeps: error: } (apt-get install debhelper and the build dependencies)"
fi

vt_step "dpkg-buildpackage -b -us -uc (version $version)"
vt_log_file "$VT_TMP/build.log"
# Parallel, and with the checks (a caller's nocheck would skip the unit suite).
(cd "$tree" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL DEB_BUILD_OPTIONS="parallel=$(nproc)" \
	dpkg-buildpackage -b -us -uc) >"$VT_TMP/build.log" 2>&1 ||
	vt_fail "dpkg-buildpackage failed"
vt_log "built in ${SECONDS}s: $(cd "$pkgdir" && echo *.deb)"
deb=$pkgdir/volmgr_${version}_$arch.deb
[[ -f $deb ]] || vt_fail "no $deb"
objdir=$(find "$tree" -maxdepth 1 -name 'obj-*' -type d | head -n 1)
[[ -n $objdir ]] || vt_fail "no obj-* build directory in $tree"
vt_assert_eq "$version" "$(meson introspect --projectinfo "$objdir" | jq -r .version)" \
	"meson's project version (debian/changelog says $version)"

vt_step "the build ran the unit suite, and only it"
build_log=$(<"$VT_TMP/build.log")
vt_assert_contains "$build_log" "meson test --suite unit" "the build log"
grep -qE '^Ok: +[1-9]' "$VT_TMP/build.log" || vt_fail "no unit test passed in the build"
grep -qE '^Fail: +0 *$' "$VT_TMP/build.log" || vt_fail "a unit test failed in the build"
! grep -qE 'volmgr:(integration|e2e|packaging) /' "$VT_TMP/build.log" ||
	vt_fail "the package build ran tests outside the unit suite"
vt_log "ok: $(grep -cE '^ *[0-9]+/[0-9]+ volmgr:unit / .* OK ' "$VT_TMP/build.log") unit tests passed"

vt_step "the source tree got no build artifacts"
for f in "$src"/obj-* "$src"/debian/{.debhelper,volmgr,tmp,files,debhelper-build-stamp} \
	"$src"/debian/*.substvars "$src"/debian/*.debhelper.log "$(dirname "$src")/volmgr_${version}_$arch".{deb,changes,buildinfo}; do
	[[ ! $f -nt $VT_TMP/.start ]] || vt_fail "this run made or changed $f"
done
vt_log "ok: no new obj-*, debian/volmgr, debian/.debhelper, ../volmgr_*.deb"

# ------------------------------------------------------- the .deb itself
vt_step "dpkg-deb -c: what meson installs, and only that"
mapfile -t contents < <(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { print $6 }' | sed 's|^\./|/|')
((${#contents[@]} > 0)) || vt_fail "dpkg-deb -c $deb lists nothing"
printf '%s\n' "${contents[@]}" | sed 's/^/#   /'
declare -A in_deb=() is_expected=()
for p in "${contents[@]}"; do in_deb[$p]=1; done
# meson's install list, moved where debian/rules puts it.
deb_path() {
	local p=$1
	case $p in
	/usr/lib/systemd/system/* | /usr/lib/systemd/user/* | /usr/lib/udev/rules.d/*) p=${p#/usr} ;;
	esac
	[[ $p == /usr/share/man/* ]] && p=$p.gz
	printf '%s\n' "$p"
}
mapfile -t meson_installs < <(meson introspect --installed "$objdir" | jq -r '.[]' | sort)
((${#meson_installs[@]} > 0)) || vt_fail "meson introspect --installed lists nothing"
expected=()
for p in "${meson_installs[@]}"; do expected+=("$(deb_path "$p")"); done
# What the brief names, whatever meson says.
expected+=(/usr/sbin/volmgrd /usr/bin/volmgr
	/usr/share/man/man8/volmgr.8.gz /usr/share/man/man8/volmgrd.8.gz
	/usr/share/doc/volmgr/copyright /usr/share/doc/volmgr/changelog.gz)
[[ -f $tree/man/volmgr.conf.5.scd ]] && expected+=(/usr/share/man/man5/volmgr.conf.5.gz)
units=()
for u in "$tree"/systemd/*.{service,socket,timer,path,mount,automount,target}; do
	[[ -f $u ]] && units+=("${u##*/}")
done
((${#units[@]} > 0)) || vt_fail "no unit files in $tree/systemd"
rules=()
for r in "$tree"/udev/*.rules; do [[ -f $r ]] && rules+=("${r##*/}"); done
((${#rules[@]} > 0)) || vt_fail "no udev rules in $tree/udev"
for u in "${units[@]}"; do expected+=("/lib/systemd/system/$u"); done
for r in "${rules[@]}"; do expected+=("/lib/udev/rules.d/$r"); done
for p in "${expected[@]}"; do
	[[ -n ${in_deb[$p]:-} ]] || vt_fail "the package lacks $p"
	is_expected[$p]=1
done
vt_log "ok: the package has all ${#expected[@]} expected paths"
for p in "${contents[@]}"; do
	[[ $p == /usr/share/doc/volmgr/* || $p == /usr/share/lintian/overrides/volmgr ]] && continue
	[[ -n ${is_expected[$p]:-} ]] || vt_fail "the package has $p, which meson does not install"
done
vt_log "ok: and nothing else (besides /usr/share/doc/volmgr and the lintian overrides)"
completions=()
for p in "${contents[@]}"; do [[ $p == /usr/share/bash-completion/* ]] && completions+=("$p"); done
if ((${#completions[@]})); then
	vt_log "bash completion: ${completions[*]}"
else
	vt_log "note: meson installs no bash completion (none in the package)"
fi

vt_step "/usr/bin/volmgr is static, /usr/sbin/volmgrd is not"
dpkg-deb -x "$deb" "$VT_TMP/x"
dyn=$(readelf -d "$VT_TMP/x/usr/bin/volmgr")
[[ $dyn != *"(NEEDED)"* ]] || vt_fail "/usr/bin/volmgr needs shared libraries: $dyn"
[[ $(readelf -l "$VT_TMP/x/usr/bin/volmgr") != *"program interpreter"* ]] ||
	vt_fail "/usr/bin/volmgr has a program interpreter"
[[ $(readelf -d "$VT_TMP/x/usr/sbin/volmgrd") == *"(NEEDED)"* ]] || vt_fail "volmgrd has no NEEDED entries?"
vt_log "ok"
rm -rf "$VT_TMP/x"

vt_step "control fields and maintainer scripts"
depends=$(dpkg-deb -f "$deb" Depends)
vt_log "Depends: $depends"
[[ $depends == "btrfs-progs, "* ]] || vt_fail "Depends does not start with btrfs-progs: $depends"
vt_assert_contains "$depends" "libc6 (>= " "Depends (shlibs)"
[[ $depends != *'${'* ]] || vt_fail "an unresolved substitution in Depends: $depends"
vt_assert_eq "docker.io | podman, git" "$(dpkg-deb -f "$deb" Recommends)" "Recommends"
vt_assert_eq "$version" "$(dpkg-deb -f "$deb" Version)" "Version"
postinst=$(dpkg-deb -I "$deb" postinst 2>/dev/null) || vt_fail "the package has no postinst"
prerm=$(dpkg-deb -I "$deb" prerm 2>/dev/null) || vt_fail "the package has no prerm"
vt_assert_contains "$postinst" "deb-systemd-helper update-state 'volmgrd.service'" "postinst"
vt_assert_contains "$prerm" "deb-systemd-invoke stop" "prerm (stop on removal)"
[[ $prerm == *volmgrd.service* ]] || vt_fail "prerm does not stop volmgrd.service"

# -------------------------------------------------- the bookworm chroot
suite=bookworm
chroot_pkgs=man-db
cache_dir=${VT_CACHE_DIR:-/var/cache/volmgr-tests}
mirror=${VT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
key=$(printf '%s\n' "$suite" minbase "$chroot_pkgs" "$arch" | sha256sum | cut -c1-16)
tarball=$cache_dir/deb-install-$suite-$key.tar
aptcache=$cache_dir/deb-install-$suite-$key.apt # lists/ and archives/


vt_step "a fresh $suite chroot (minbase + $chroot_pkgs)"
vt_debootstrap_tarball "$tarball" "$suite" "$chroot_pkgs" "$mirror"
root=$VT_TMP/root
mkdir "$root"
vt_on_exit vt_rm_rootfs "$root"
tar --numeric-owner -C "$root" -xf "$tarball"
[[ -c $root/dev/null ]] || vt_fail "$root/dev/null is not a device node"
# The host's resolver, for apt; no service may start in the chroot.
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
mount -t proc proc "$root/proc"
vt_on_exit vt__umount "$root/proc"
# apt's lists and downloaded .debs live in the cache, shared by runs.
mkdir -p "$aptcache/lists/partial" "$aptcache/archives/partial"
mount --bind "$aptcache/lists" "$root/var/lib/apt/lists"
vt_on_exit vt__umount "$root/var/lib/apt/lists"
mount --bind "$aptcache/archives" "$root/var/cache/apt/archives"
vt_on_exit vt__umount "$root/var/cache/apt/archives"
in_root() {
	chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}
apt_get() {
	# Compressed lists, no translations: 15 MB of lists instead of 80.
	in_root apt-get -q -y -o APT::Install-Recommends=false -o Dpkg::Use-Pty=false \
		-o Acquire::Languages=none -o Acquire::GzipIndexes=true "$@"
}

vt_step "dpkg -i, then apt-get -f install (the dependencies)"
cp "$deb" "$root/tmp/"
vt_log_file "$VT_TMP/install.log"
status=0
in_root dpkg -i "/tmp/${deb##*/}" >>"$VT_TMP/install.log" 2>&1 || status=$?
vt_log "dpkg -i exited $status (1 expected: minbase lacks btrfs-progs and the libraries)"
exec {aptlock}>"$cache_dir/.deb-install-apt.lock"
flock -w 600 "$aptlock" || vt_fail "$cache_dir/.deb-install-apt.lock still locked after 10 min"
apt_update() {
	vt_log "apt-get update (sources.list: $(grep -h '^deb ' "$root/etc/apt/sources.list" || true))"
	apt_get update >>"$VT_TMP/install.log" 2>&1 ||
		vt_skip "apt-get update failed in the chroot (is the mirror reachable?): $(tail -n 3 "$VT_TMP/install.log")"
}
# Offline first: the cached lists and .debs, if they do.
if [[ -z $(find "$aptcache/lists" -maxdepth 1 -name '*_Packages*' -print -quit) ]]; then
	apt_update
fi
if ! apt_get -f install >>"$VT_TMP/install.log" 2>&1; then
	vt_log "apt-get -f install failed with the cached lists, updating them"
	apt_update
	apt_get -f install >>"$VT_TMP/install.log" 2>&1 || vt_fail "apt-get -f install failed"
fi
flock -u "$aptlock"
exec {aptlock}>&-
sed -n '/^The following NEW packages will be installed:/,/^[0-9]* upgraded/p' "$VT_TMP/install.log" | sed 's/^/# /'
vt_assert_eq "install ok installed" "$(in_root dpkg-query -W -f '${Status}' volmgr)" "volmgr's status"
vt_assert_eq "install ok installed" "$(in_root dpkg-query -W -f '${Status}' btrfs-progs)" "btrfs-progs' status"
for p in docker.io podman git; do
	st=$(in_root dpkg-query -W -f '${Status}' "$p" 2>/dev/null || true)
	[[ $st != *" installed" ]] || vt_fail "$p (a Recommends) was installed"
done
vt_log "ok: no Recommends installed (--no-install-recommends)"

vt_step "in the chroot: the programs, the man pages"
vt_assert_contains "$(in_root volmgr --version)" "$version" "volmgr --version"
vt_assert_contains "$(in_root volmgrd --version)" "$version" "volmgrd --version"
vt_assert_eq /usr/share/man/man8/volmgr.8.gz "$(in_root man -w volmgr)" "man -w volmgr"
vt_assert_eq /usr/share/man/man8/volmgrd.8.gz "$(in_root man -w volmgrd)" "man -w volmgrd"
if [[ -f $tree/man/volmgr.conf.5.scd ]]; then
	vt_assert_eq /usr/share/man/man5/volmgr.conf.5.gz "$(in_root man -w 5 volmgr.conf)" "man -w 5 volmgr.conf"
fi
page=$(in_root env MANPAGER=cat MANWIDTH=80 man 8 volmgr 2>&1)
vt_assert_contains "$page" "SYNOPSIS" "man 8 volmgr, rendered"
vt_assert_contains "$(in_root mkfs.btrfs --version)" "btrfs-progs" "mkfs.btrfs --version (the Depends)"

vt_step "in the chroot: units and udev rules in place, not enabled"
for u in "${units[@]}"; do
	in_root test -f "/lib/systemd/system/$u" || vt_fail "/lib/systemd/system/$u missing in the chroot"
	vt_assert_contains "$(in_root dpkg -S "/lib/systemd/system/$u")" "volmgr:" "dpkg -S /lib/systemd/system/$u"
	[[ $u == *.service ]] || continue
	# Every program a service runs is installed.
	while IFS= read -r cmd; do
		cmd=${cmd#*=}
		cmd=${cmd##+([-@:+!])}
		cmd=${cmd%% *}
		in_root test -x "$cmd" || vt_fail "$u runs $cmd, which is not installed"
		vt_log "ok: $u runs $cmd, installed"
	done < <(grep -E '^Exec(Start|StartPre|StartPost|Stop|Reload)=' "$root/lib/systemd/system/$u")
done
for r in "${rules[@]}"; do
	in_root test -f "/lib/udev/rules.d/$r" || vt_fail "/lib/udev/rules.d/$r missing in the chroot"
	vt_assert_contains "$(in_root dpkg -S "/lib/udev/rules.d/$r")" "volmgr:" "dpkg -S /lib/udev/rules.d/$r"
done
enabled=$(find "$root/etc/systemd" -name 'volmgr*' 2>/dev/null || true)
[[ -z $enabled ]] || vt_fail "units enabled by the installation: $enabled"
vt_log "ok: no unit enabled (dh_installsystemd --no-enable)"

vt_step "dpkg --purge volmgr"
in_root dpkg --purge volmgr >>"$VT_TMP/install.log" 2>&1 || vt_fail "dpkg --purge volmgr failed"
st=$(in_root dpkg-query -W -f '${Status}' volmgr 2>/dev/null || true)
[[ -z $st || $st == *" not-installed" ]] || vt_fail "volmgr's status after purge: $st"
vt_log "ok: volmgr's status after purge: '${st:-unknown to dpkg}'"
for p in /usr/sbin/volmgrd /usr/bin/volmgr "/lib/systemd/system/${units[0]}" "/lib/udev/rules.d/${rules[0]}"; do
	! in_root test -e "$p" || vt_fail "$p is still there after purge"
done
vt_log "ok: the files are gone"
vt_log "done in ${SECONDS}s"
