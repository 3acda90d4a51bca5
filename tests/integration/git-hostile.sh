#!/usr/bin/env bash
# git never runs what a cache's repository says, and nothing git starts
# outlives the request.
#
# A catalog of hostile repository settings, planted in a cache's .git the
# way a compromised git user could (the cache is a read-only subvolume of
# the git user's: flip it writable, edit, flip it back) and through `cache
# import` of a crafted tree.  Each hostile command leaves a marker file
# and starts a daemonised child (setsid, double fork) carrying this
# test's token in its command line and environment.  For each entry,
# `volmgr snapshot cache:NAME@REV` (a revision only the remote has: fetch,
# then checkout) and `volmgr cache update NAME` must leave no marker and
# no process with the token, and must still work, or be refused with a
# clear message where refusing is right.
#
# Then the same for a legitimate child of git: [git] command is a wrapper
# that starts a daemonised child (with its descriptors closed, or holding
# volmgrd's pipes), or whose own process makes a sibling of itself with
# clone(CLONE_PARENT), and then execs the real git; and a git that hangs
# past the time limit after starting one.
#
# Every failure is collected and reported at the end (so a run against a
# build without the defences lists each entry that got through).
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init git-hostile
vt_require_root
vt_require_cmd jq git btrfs setsid /usr/bin/python3 sha256sum

# git runs as nobody: it must reach the test's repositories and scripts.
chmod 0711 "$VT_TMP"
git_user=nobody
git_group=$(id -gn "$git_user")
pool=$(vt_make_pool btrfs 2G)/pool
token=vt-hostile-$VT_ID
marks=$VT_TMP/marks # only hostile commands write here
mkdir "$marks"
chmod 1777 "$marks"

# ---------------------------------------------------------------- helpers

# Processes (other than the scanner) whose command line or environment
# holds the token: only what this test's hostile commands started.
survivors() {
	/usr/bin/python3 - "$token" <<'PY'
import os, sys
tok, me = sys.argv[1].encode(), os.getpid()
for p in os.listdir("/proc"):
    if not p.isdigit() or int(p) == me:
        continue
    for f in ("cmdline", "environ"):
        try:
            with open(f"/proc/{p}/{f}", "rb") as fh:
                if tok in fh.read():
                    print(p)
                    break
        except OSError:
            pass
PY
}
# Kill them by pid (found by this test's token, never by name).
kill_survivors() {
	local p
	for p in $(survivors); do kill -KILL "$p" 2>/dev/null || true; done
	return 0
}
vt_on_exit kill_survivors

failures=()
bad() {
	printf 'BAD: %s\n' "$*" >&2
	failures+=("$*")
}
ok() { vt_log "ok: $*"; }

# No marker, no survivor; clear both for the next check.
check_clean() {
	local what=$1 pids p
	if [[ -n $(ls -A "$marks") ]]; then
		bad "$what: a hostile command ran: $(cd "$marks" && for f in *; do printf '[%s: %s] ' "$f" "$(head -c 200 "$f" | tr '\n' ' ')"; done)"
		find "$marks" -mindepth 1 -delete 2>/dev/null || true
	else
		ok "$what: no marker"
	fi
	pids=$(survivors)
	if [[ -n $pids ]]; then
		bad "$what: processes outlived the request: $(for p in $pids; do printf '[%s: %s] ' "$p" "$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"; done)"
		kill_survivors
	else
		ok "$what: nothing git started is still running"
	fi
}

# The hostile command: $1 says what ran it.  It leaves a marker and starts
# a daemonised child (a new session, then a second fork) that would live
# for an hour, with the token in its command line and environment.
payload=$VT_TMP/payload
cat >"$payload" <<EOF
#!/bin/sh
what=\${1:-unknown}
echo "\$what uid=\$(id -u) args=\$*" >>"$marks/\$what"
VT_HOSTILE=$token setsid -f sh -c 'sh -c "sleep 3600; :" "\$0" & exit 0' "$token-\$what" </dev/null >/dev/null 2>&1
exit 1
EOF
chmod 0755 "$payload"

# ---------------------------------------------------------------- upstream

up=$VT_TMP/up.git
work=$VT_TMP/work
git init -q --bare -b main "$up"
git clone -q "$up" "$work" 2>/dev/null
git -C "$work" checkout -q -b main
# Attributes in the tree that name drivers: harmless while no config
# defines them (and volmgr's never does).
printf '* filter=evil diff=evil merge=evil\n' >"$work/.gitattributes"
gen=0
commit_gen() {
	gen=$((gen + 1))
	local i
	for i in 1 2 3 4; do echo "$gen" >"$work/f$i.txt"; done
	echo "$gen" >"$work/gen"
	git -C "$work" add -A
	git -C "$work" -c user.name=t -c user.email=t@example.org commit -qm "gen $gen"
	git -C "$work" push -q origin main
}
commit_gen
# Another repository (objects for an alternate, a hostile gitdir).
git clone -q --bare "$up" "$VT_TMP/other.git"
chmod -R a+rX "$VT_TMP/other.git"

cat >"$VT_TMP/volmgr.conf" <<CONF
[git]
user = $git_user
timeout = 30
CONF
VT_DAEMON_CONFIG=$VT_TMP/volmgr.conf vt_start_daemon "$pool"

# ---------------------------------------------------------- the catalog

gitcfg() { git config -f "$cache/.git/config" "$@"; }
# A copy of the cache's .git outside the cache, the git user's, with a
# hostile uploadpack: where a gitdir file, a link or commondir points.
evil_gitdir() {
	local dst=$VT_TMP/evil-$1
	cp -a "$cache/.git" "$dst"
	git config -f "$dst/config" remote.origin.uploadpack "$payload $1"
	chown -R "$git_user:$git_group" "$dst"
	printf '%s\n' "$dst"
}

plant_uploadpack() { gitcfg remote.origin.uploadpack "$payload uploadpack"; }
plant_receivepack() { gitcfg remote.origin.receivepack "$payload receivepack"; }
plant_filter_tree() { # the committed .gitattributes names filter "evil"
	gitcfg filter.evil.smudge "$payload smudge"
	gitcfg filter.evil.clean "$payload clean"
	gitcfg filter.evil.required true
}
plant_filter_process() { gitcfg filter.evil.process "$payload process"; }
plant_filter_info_attributes() {
	printf '* filter=evil2\n' >"$cache/.git/info/attributes"
	printf '* filter=evil2\n' >"$cache/.gitattributes-planted"
	gitcfg filter.evil2.smudge "$payload info-attributes"
	gitcfg filter.evil2.clean "$payload info-attributes-clean"
}
plant_drivers() {
	gitcfg diff.evil.textconv "$payload textconv"
	gitcfg diff.evil.command "$payload diff"
	gitcfg merge.evil.driver "$payload merge"
}
plant_fsmonitor() { gitcfg core.fsmonitor "$payload fsmonitor"; }
plant_hooks() {
	local h
	mkdir -p "$cache/.git/evil-hooks"
	for h in post-checkout reference-transaction post-index-change pre-auto-gc post-merge; do
		printf '#!/bin/sh\nexec %s hook-%s\n' "$payload" "$h" >"$cache/.git/hooks/$h"
		printf '#!/bin/sh\nexec %s hookspath-%s\n' "$payload" "$h" >"$cache/.git/evil-hooks/$h"
		chmod 0755 "$cache/.git/hooks/$h" "$cache/.git/evil-hooks/$h"
	done
	gitcfg core.hooksPath "$cache/.git/evil-hooks"
}
plant_sshcommand() {
	gitcfg remote.origin.url "ssh://volmgr-hostile.invalid/x.git"
	gitcfg core.sshCommand "$payload sshCommand"
}
plant_gitproxy() { # git runs core.gitProxy as a program, without a shell
	printf '#!/bin/sh\nexec %s gitProxy "$@"\n' "$payload" >"$VT_TMP/payload-gitproxy"
	chmod 0755 "$VT_TMP/payload-gitproxy"
	gitcfg remote.origin.url "git://volmgr-hostile.invalid/x.git"
	gitcfg core.gitProxy "$VT_TMP/payload-gitproxy"
}
plant_pager_editor() {
	gitcfg core.pager "$payload pager"
	gitcfg core.editor "$payload editor"
	gitcfg sequence.editor "$payload sequence-editor"
	gitcfg core.askPass "$payload askPass"
}
plant_include() {
	printf '[remote "origin"]\n\tuploadpack = %s include\n' "$payload" >"$VT_TMP/evil.include"
	chmod 0644 "$VT_TMP/evil.include"
	gitcfg include.path "$VT_TMP/evil.include"
}
plant_includeif() {
	printf '[remote "origin"]\n\tuploadpack = %s includeIf\n' "$payload" >"$VT_TMP/evil.includeif"
	chmod 0644 "$VT_TMP/evil.includeif"
	gitcfg 'includeIf.gitdir:/.path' "$VT_TMP/evil.includeif"
}
plant_credential() {
	gitcfg credential.helper "!$payload credential"
	gitcfg credential.useHttpPath true
}
plant_alias() {
	local a
	for a in fetch checkout rev-parse update-index symbolic-ref; do
		gitcfg "alias.$a" "!$payload alias-$a"
	done
}
plant_submodules() {
	printf '[submodule "sub"]\n\tpath = sub\n\turl = ext::%s%% gitmodules-ext\n[submodule "sub2"]\n\tpath = sub2\n\turl = file://%s\n' \
		"$payload" "$VT_TMP/other.git" >"$cache/.gitmodules"
	gitcfg submodule.recurse true
	gitcfg fetch.recurseSubmodules true
	gitcfg submodule.sub.url "ext::$payload% submodule-ext"
	gitcfg submodule.sub.active true
	gitcfg submodule.sub.update "!$payload submodule-update"
	gitcfg submodule.sub2.url "file://$VT_TMP/other.git"
	gitcfg submodule.sub2.active true
	gitcfg protocol.ext.allow always
	gitcfg protocol.file.allow always
}
plant_worktree() { gitcfg core.worktree "$marks"; } # a checkout there is a marker
plant_config_worktree() {
	gitcfg core.repositoryformatversion 1
	gitcfg extensions.worktreeConfig true
	printf '[remote "origin"]\n\tuploadpack = %s config.worktree\n' "$payload" >"$cache/.git/config.worktree"
}
plant_commondir() {
	local d
	d=$(evil_gitdir commondir)
	echo "$d" >"$cache/.git/commondir"
}
plant_alternates() {
	echo "$VT_TMP/other.git/objects" >"$cache/.git/objects/info/alternates"
	echo "http://volmgr-hostile.invalid/objects" >"$cache/.git/objects/info/http-alternates"
	gitcfg core.alternateRefsCommand "$payload alternateRefsCommand"
}
plant_config_symlink() {
	cp "$cache/.git/config" "$VT_TMP/evil.config"
	git config -f "$VT_TMP/evil.config" remote.origin.uploadpack "$payload config-symlink"
	chmod 0644 "$VT_TMP/evil.config"
	sha256sum "$VT_TMP/evil.config" >"$VT_TMP/evil.config.sum"
	ln -sf "$VT_TMP/evil.config" "$cache/.git/config"
}
plant_gitdir_file() {
	local d
	d=$(evil_gitdir gitdir-file)
	rm -rf "$cache/.git"
	printf 'gitdir: %s\n' "$d" >"$cache/.git"
}
plant_git_symlink() {
	local d
	d=$(evil_gitdir git-symlink)
	rm -rf "$cache/.git"
	ln -s "$d" "$cache/.git"
}
plant_not_owned() { chown root:root "$cache/.git"; } # only root could: volmgr says no

# hostile NAME PLANT EXPECT [MESSAGE]: EXPECT is "works" or "refused"
# (then the message must contain MESSAGE).
hostile() {
	local name=$1 plant=$2 expect=$3 want=${4:-} cache status msg v=v-$1 c=h-$1
	vt_step "hostile: $name"
	"$VOLMGR" cache create "$c" --git "file://$up" --branch main >/dev/null
	cache=$pool/caches/$c
	local old_gen
	old_gen=$(cat "$cache/gen")
	btrfs property set -ts "$cache" ro false
	"$plant"
	# As the git user left it (except what only root could do).
	[[ $plant == plant_not_owned ]] || chown -h -R "$git_user:$git_group" "$cache"
	btrfs property set -ts "$cache" ro true
	commit_gen
	git -C "$work" tag "t-$name" && git -C "$work" push -q origin "t-$name"

	status=0
	msg=$("$VOLMGR" snapshot "cache:$c@t-$name" "$v" 2>&1) || status=$?
	if [[ $expect == works ]]; then
		if [[ $status == 0 && $(cat "$pool/volumes/$v/gen" 2>/dev/null) == "$gen" ]]; then
			ok "$name: snapshot @t-$name has generation $gen"
			head -n1 "$pool/volumes/$v/.git/config" | grep -q '^# Written by volmgr' ||
				bad "$name: the volume's .git/config is not volmgr's: $(head -c 300 "$pool/volumes/$v/.git/config")"
			[[ ! -e $pool/volumes/$v/.git/objects/info/alternates ]] ||
				bad "$name: the volume still has alternates"
		else
			bad "$name: snapshot @t-$name failed (status $status): $msg"
		fi
	else
		if [[ $status != 0 && $msg == *"$want"* && ! -e $pool/volumes/$v ]]; then
			ok "$name: snapshot refused: ${msg##*error: }"
		else
			bad "$name: snapshot not refused as expected (status $status): $msg"
		fi
	fi
	check_clean "$name (snapshot)"
	[[ -z $(ls -A "$pool/staging") ]] || bad "$name: staging not empty: $(ls -A "$pool/staging")"

	status=0
	msg=$("$VOLMGR" cache update "$c" 2>&1) || status=$?
	if [[ $expect == works ]]; then
		if [[ $status == 0 && $(cat "$cache/gen") == "$gen" ]]; then
			ok "$name: cache update to generation $gen"
			head -n1 "$cache/.git/config" | grep -q '^# Written by volmgr' ||
				bad "$name: the updated cache's .git/config is not volmgr's"
		else
			bad "$name: cache update failed (status $status): $msg"
		fi
	else
		if [[ $status != 0 && $msg == *"$want"* && $(cat "$cache/gen") == "$old_gen" ]]; then
			ok "$name: update refused, the cache unchanged: ${msg##*error: }"
		else
			bad "$name: update not refused as expected (status $status): $msg"
		fi
	fi
	check_clean "$name (update)"
	[[ -z $(ls -A "$pool/staging") ]] || bad "$name: staging not empty after the update"
	"$VOLMGR" rm "$v" >/dev/null 2>&1 || true
	"$VOLMGR" cache rm "$c" >/dev/null
}

hostile uploadpack plant_uploadpack works
hostile receivepack plant_receivepack works
hostile filter-tree-attributes plant_filter_tree works
hostile filter-process plant_filter_process works
hostile filter-info-attributes plant_filter_info_attributes works
hostile diff-merge-drivers plant_drivers works
hostile fsmonitor plant_fsmonitor works
hostile hooks plant_hooks works
hostile sshcommand plant_sshcommand works
hostile gitproxy plant_gitproxy works
hostile pager-editor plant_pager_editor works
hostile include plant_include works
hostile includeif plant_includeif works
hostile credential-helper plant_credential works
hostile aliases plant_alias works
hostile submodules plant_submodules works
hostile core-worktree plant_worktree works
hostile config-worktree plant_config_worktree works
hostile commondir plant_commondir works
hostile alternates plant_alternates works
hostile config-symlink plant_config_symlink works
if sha256sum -c --quiet "$VT_TMP/evil.config.sum" && [[ $(stat -c %U "$VT_TMP/evil.config") == root ]]; then
	ok "the config a link pointed to is untouched (content and owner)"
else
	bad "the config a planted link pointed to was written or chowned"
fi
hostile gitdir-file plant_gitdir_file refused "is not a directory"
hostile git-symlink plant_git_symlink refused "is not a directory"
hostile not-owned plant_not_owned refused "not to the git user"

vt_step "cache import of a crafted tree: no revisions, no update"
crafted=$VT_TMP/crafted
git clone -q "$up" "$crafted"
git -C "$crafted" config remote.origin.uploadpack "$payload import-uploadpack"
git -C "$crafted" config filter.evil.smudge "$payload import-smudge"
git -C "$crafted" config core.fsmonitor "$payload import-fsmonitor"
"$VOLMGR" cache import crafted "$crafted" >/dev/null
commit_gen
git -C "$work" tag t-import && git -C "$work" push -q origin t-import
status=0
msg=$("$VOLMGR" snapshot cache:crafted@t-import v-import 2>&1) || status=$?
if [[ $status == 7 && $msg == *"was imported, not made from git: it has no revisions"* && ! -e $pool/volumes/v-import ]]; then
	ok "snapshot @REV of an imported cache refused: ${msg##*error: }"
else
	bad "snapshot @REV of an imported cache not refused (status $status): $msg"
fi
for rev in HEAD main; do
	status=0
	msg=$("$VOLMGR" snapshot "cache:crafted@$rev" v-import 2>&1) || status=$?
	[[ $status == 7 && ! -e $pool/volumes/v-import ]] || bad "snapshot cache:crafted@$rev: status $status: $msg"
done
status=0
msg=$("$VOLMGR" cache update crafted 2>&1) || status=$?
[[ $status == 7 && $msg == *"not made from git"* ]] || bad "update of an imported cache: status $status: $msg"
check_clean "crafted import"
[[ -z $(ls -A "$pool/staging") ]] || bad "staging not empty after the import"
"$VOLMGR" snapshot cache:crafted v-plain >/dev/null # a plain snapshot still works
"$VOLMGR" rm v-plain >/dev/null

# ------------------------------------------- a legitimate child of git

vt_step "[git] command: a wrapper that leaves a daemonised child, then runs git"
mode_file=$VT_TMP/wrapper-mode
cat >"$VT_TMP/git-wrapper" <<EOF
#!/bin/sh
# What a credential cache or an fsmonitor daemon does: a child in a
# session of its own that lives on after git.
case \$(cat "$mode_file") in
detached)
	VT_HOSTILE=$token setsid -f sh -c 'sh -c "sleep 3600; :" "\$0" & exit 0' "$token-detached" </dev/null >/dev/null 2>&1 ;;
keeps-pipes) # keeps volmgrd's stdout and stderr pipes open
	VT_HOSTILE=$token setsid -f sh -c 'sh -c "sleep 3600; :" "\$0" & exit 0' "$token-keeps-pipes" </dev/null ;;
clone-parent) # git's own process makes a sibling (clone(CLONE_PARENT | SIGCHLD)), then runs git
	exec env VT_HOSTILE=$token /usr/bin/python3 -c '
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
pid = libc.syscall(56 if os.uname().machine == "x86_64" else 220, 0x8000 | 17, 0, 0, 0, 0)
if pid == 0:
    os.setsid()
    fd = os.open("/dev/null", os.O_RDWR)
    for i in (0, 1, 2):
        os.dup2(fd, i)
    os.execv("/bin/sh", ["sh", "-c", "sleep 3600; :", sys.argv[1]])
with open(sys.argv[2], "a") as log:
    print("clone(CLONE_PARENT):", os.strerror(ctypes.get_errno()) if pid < 0 else "made", file=log)
env = {k: v for k, v in os.environ.items() if k != "VT_HOSTILE"}
os.execve("/usr/bin/git", ["git"] + sys.argv[3:], env)
' "$token-clone-parent" "$VT_TMP/clone-parent.log" "\$@" ;;
esac
exec /usr/bin/git "\$@"
EOF
chmod 0755 "$VT_TMP/git-wrapper"
echo detached >"$mode_file"
chmod 0644 "$mode_file"
: >"$VT_TMP/clone-parent.log"
chmod 0666 "$VT_TMP/clone-parent.log" # the git user's wrapper reports there
printf '[git]\nuser = %s\ntimeout = 20\ncommand = %s\n' "$git_user" "$VT_TMP/git-wrapper" >"$VT_TMP/volmgr.conf"
vt_restart_daemon
"$VOLMGR" cache create wrapped --git "file://$up" --branch main >/dev/null ||
	bad "cache create with the wrapper failed"
check_clean "wrapper: cache create"
for mode in detached keeps-pipes clone-parent; do
	echo "$mode" >"$mode_file"
	commit_gen
	git -C "$work" tag "t-w-$mode" && git -C "$work" push -q origin "t-w-$mode"
	status=0
	msg=$("$VOLMGR" snapshot "cache:wrapped@t-w-$mode" "vw-$mode" 2>&1) || status=$?
	if [[ $status == 0 && $(cat "$pool/volumes/vw-$mode/gen") == "$gen" ]]; then
		ok "wrapper $mode: snapshot @t-w-$mode"
	else
		bad "wrapper $mode: snapshot failed (status $status): $msg"
	fi
	check_clean "wrapper $mode (snapshot)"
	status=0
	msg=$("$VOLMGR" cache update wrapped 2>&1) || status=$?
	if [[ $status == 0 && $(cat "$pool/caches/wrapped/gen") == "$gen" ]]; then
		ok "wrapper $mode: cache update"
	else
		bad "wrapper $mode: cache update failed (status $status): $msg"
	fi
	check_clean "wrapper $mode (update)"
done
[[ ! -s $VT_TMP/clone-parent.log ]] || vt_log "$(sort "$VT_TMP/clone-parent.log" | uniq -c)"

vt_step "the time limit stops the children too"
cat >"$VT_TMP/slow-git" <<EOF
#!/bin/sh
VT_HOSTILE=$token setsid -f sh -c 'sh -c "sleep 3600; :" "\$0" & exit 0' "$token-slow" </dev/null >/dev/null 2>&1
sleep 3600
EOF
chmod 0755 "$VT_TMP/slow-git"
printf '[git]\nuser = %s\ntimeout = 2\ncommand = %s\n' "$git_user" "$VT_TMP/slow-git" >"$VT_TMP/volmgr.conf"
vt_restart_daemon
status=0
msg=$("$VOLMGR" cache update wrapped 2>&1) || status=$?
if [[ $status != 0 && $msg == *"took longer than 2 s and was stopped"* ]]; then
	ok "a hung git is stopped: ${msg##*error: }"
else
	bad "a hung git: status $status: $msg"
fi
check_clean "time limit"
vt__daemon_alive || bad "volmgrd died"

if ((${#failures[@]})); then
	printf '\n%d failure(s):\n' "${#failures[@]}" >&2
	printf '  - %s\n' "${failures[@]}" >&2
	vt_fail "${#failures[@]} hostile setting(s) or children got through"
fi
