#!/usr/bin/env bash
# The documentation against the programs:
#   - `volmgr --help` against volmgr.8: the same commands, the same options
#     per command and globally, and no option in one that the other lacks;
#   - `volmgrd --help` against volmgrd.8: the same options; the same for
#     volmgr-engined (its OPTIONS section, and the options its code takes);
#   - the arguments volmgr.c and volmgrd's settings.c accept against --help;
#   - every section and key that volmgr/lib/config/config.c accepts against
#     volmgr.conf.5, both ways, and the example configuration of
#     volmgr.conf.5 accepted by volmgrd.
#
# The man pages are read as scdoc builds them (build/man/*), in roff, not
# rendered, so no formatter is needed.  Extraction rules, used throughout:
#
#   roff  A man page "entry" is a text line directly followed by ".RS 4":
#         scdoc makes one of every unindented line followed by a
#         tab-indented paragraph, i.e. "*snapshot* _SOURCE_ ..." or
#         "*--socket* _PATH_".  Bold runs (\fB...\fR) are the literal words.
#         An "option" is a bold run that matches ^--?[A-Za-z][A-Za-z-]*$
#         (a bare "--", the end-of-options marker, is not one).
#           command of an entry in COMMANDS   its first bold run
#                                              ("snapshot", "cache import")
#           options of that command           the options in its entry line
#           global options                     the options in the entry lines
#                                              of OPTIONS
#           all options of a page              the options anywhere in it
#   help  The text that --help prints: blocks "Commands:" and "Options:" end
#         at a blank line.  An "entry" is a line of the block that starts
#         with exactly two spaces; its "synopsis" is the entry line up to the
#         first run of two or more spaces (the description column), plus
#         any following line whose first non-blank character is "[" (a
#         wrapped synopsis); other indented lines are description.  An "option" is a
#         word matching --?[A-Za-z][A-Za-z-]* that starts the text or
#         follows a space, "[", "|", "(" or ",".
#           command of an entry in Commands   first word of the synopsis, or
#                                              the first two if the first is
#                                              "cache" or "pool"
#           options of that command           the options in its synopsis
#           global options                     the options in the synopses
#                                              of Options
#           all options                        the options anywhere in --help
#   code  volmgr.c: every entry {"x", ..._argument, NULL, V} of its
#         struct option tables is an accepted option "--x", and also "-c"
#         where V is a letter 'c' (its parser makes getopt_long's short
#         options from these letters).  Its commands are the names and
#         aliases of the rows of its commands[] table, {"NAME", "ALIAS" or
#         NULL, ...}, but for a group's word ("pool", whose row hands the
#         rest to volmgr-pool).  settings.c (volmgrd's options) and
#         volmgr-pool.c (behind `volmgr pool`): the names of struct option
#         opts[] and the letters of getopt_long's short option string;
#         volmgr-pool.c's subcommands are the strings compared to its cmd.
#   config.c  A section is X in strcmp(section, "X").  A key is K in
#         strcmp(key, "K"); its section is the X of the nearest strcmp(
#         section, "X") above it in the same function, or else X for a
#         function named on_X.  In volmgr.conf.5 a section is a subsection
#         ".SS [X]" of SECTIONS; its keys are the first bold run of each
#         entry in that subsection.
#
# Environment: VT_SRCDIR (tests/), VT_BUILDDIR (the meson build directory),
# VOLMGR and VOLMGRD (the built programs).
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
source "${VT_SRCDIR:-$(dirname "$0")/..}/docs/lib.sh"
vt_init help-vs-man

srcdir=$(realpath "${VT_SRCDIR:-$(dirname "$0")/..}/..")
builddir=$(realpath -m "${VT_BUILDDIR:-$srcdir/build}")
mandir=$builddir/man
for f in "$VOLMGR" "$VOLMGRD" "$VOLMGR_ENGINED" "$VOLMGR_CSI"; do
	[[ -x $f ]] || vt_fail "$f not built (set VOLMGR/VOLMGRD or build first)"
done
for p in volmgr.8 volmgrd.8 volmgr-engined.8 volmgr-csi.8 volmgr.conf.5; do
	[[ -s $mandir/$p ]] || vt_fail "$mandir/$p not built (is scdoc installed?)"
done

# Exceptions: accepted by the code, deliberately not in --help (aliases, and
# volmgr-pool's --mkfs, a hook for tests).  Keep this list short; each entry
# is reported below.
undocumented_ok=(-n -l list remove help "cache list" "cache remove" --mkfs)

failed=0
problem() {
	printf 'MISMATCH: %s\n' "$*" >&2
	failed=1
}

# compare WHAT LEFT-NAME LEFT RIGHT-NAME RIGHT: sets given as lines.
compare() {
	local what=$1 ln=$2 rn=$4 l r x
	l=$(grep -v '^$' <<<"$3" | sort -u || true)
	r=$(grep -v '^$' <<<"$5" | sort -u || true)
	if [[ $l == "$r" ]]; then
		vt_log "ok: $what: ${l//$'\n'/ }"
		return 0
	fi
	while IFS= read -r x; do
		[[ -z $x ]] || problem "$what: '$x' is in $ln but not in $rn"
	done < <(comm -23 <(printf '%s\n' "$l") <(printf '%s\n' "$r"))
	while IFS= read -r x; do
		[[ -z $x ]] || problem "$what: '$x' is in $rn but not in $ln"
	done < <(comm -13 <(printf '%s\n' "$l") <(printf '%s\n' "$r"))
}

# ================================================================= volmgr

vt_step "volmgr --help against volmgr.8"
help=$("$VOLMGR" --help)
man=$mandir/volmgr.8
hent=$(help_entries <<<"$help")
ment=$(roff_entries "$man")

help_cmds=$(awk -F'\t' '$1 == "Commands" && !seen[$2]++ { print $2 }' <<<"$hent")
man_cmds=$(awk -F'\t' '$1 == "COMMANDS" { print $3 }' <<<"$ment")
compare "volmgr commands" "--help" "$help_cmds" "volmgr.8 COMMANDS" "$man_cmds"

while IFS= read -r cmd; do
	[[ -n $cmd ]] || continue
	h=$(entry_fields Commands "$cmd" <<<"$hent")
	m=$(awk -F'\t' -v c="$cmd" '$1 == "COMMANDS" && $3 == c { for (i = 4; i <= NF; i++) print $i }' <<<"$ment" | only_options)
	compare "options of '$cmd'" "--help" "$h" "volmgr.8" "$m"
done <<<"$help_cmds"

help_global=$(entry_fields Options - <<<"$hent")
man_global=$(entry_fields OPTIONS "" <<<"$ment" | only_options)
compare "volmgr global options" "--help Options" "$help_global" "volmgr.8 OPTIONS" "$man_global"

help_all=$(help_all_options <<<"$help")
man_all=$(roff_bolds "$man" | only_options)
compare "volmgr options anywhere" "--help" "$help_all" "volmgr.8" "$man_all"

vt_step "what volmgr.c (and volmgr-pool.c) accept against volmgr --help"
src=$srcdir/volmgr/cli/volmgr.c
psrc=$srcdir/volmgr/pool-helper/volmgr-pool.c
getopt_options() {
	grep -oE '\{"[a-z][a-z-]*", *(no|required|optional)_argument' "$1" | sed -E 's/^\{"([^"]*)".*/--\1/'
	grep -oE 'getopt_long\(argc, argv, "[^"]*"' "$1" | sed -E 's/.*"(.*)"/\1/' | tr -d ':' | grep -o . | sed 's/^/-/' || true
}
cli_options() {
	local entries
	entries=$(grep -oE '\{"[a-z][a-z-]*", *(no|required|optional)_argument, *NULL, *[^}]*\}' "$1" || true)
	sed -E 's/^\{"([^"]*)".*/--\1/' <<<"$entries"
	sed -nE "s/.*NULL, *'([A-Za-z])' *\\}$/-\\1/p" <<<"$entries"
}
cli_commands() {
	local rows
	rows=$(sed -n '/^static const struct command commands\[\] = {$/,/^};$/p' "$1" |
		sed -nE 's/^\s*\{"([a-z][a-z -]*)", *("([a-z][a-z -]*)"|NULL),.*/\1\n\3/p' | grep -v '^$' || true)
	# A group's word: the first word of a two-word command.
	grep -vxF -f <(grep ' ' <<<"$rows" | cut -d' ' -f1 | sort -u) <<<"$rows" || true
}
code_opts=$( (cli_options "$src"; getopt_options "$psrc") | grep -v '^$' || true)
code_cmds=$( (cli_commands "$src"
	grep -oE 'strcmp\(cmd, "[a-z]+"' "$psrc" | sed -E 's/.*"(.*)"/pool \1/') || true)
[[ -n $(cli_options "$src" | grep -v '^$') && -n $(cli_commands "$src") ]] ||
	vt_fail "no struct option entries or no commands[] rows found in $src: update the rules above"
drop_ok() { grep -vxF -f <(printf '%s\n' "${undocumented_ok[@]}") || true; }
compare "volmgr options" "volmgr.c" "$(drop_ok <<<"$code_opts")" "--help" "$help_all"
compare "volmgr commands" "volmgr.c" "$(drop_ok <<<"$code_cmds")" "--help" "$help_cmds"
for x in "${undocumented_ok[@]}"; do
	if grep -qxF -- "$x" <<<"$code_opts"$'\n'"$code_cmds"; then
		vt_log "note: volmgr accepts '$x', which neither --help nor volmgr.8 lists (undocumented_ok)"
	else
		problem "'$x' is in undocumented_ok, but the code no longer accepts it: drop it"
	fi
done

# ================================================================= volmgrd

vt_step "volmgrd --help against volmgrd.8"
dhelp=$("$VOLMGRD" --help)
dman=$mandir/volmgrd.8
dhelp_opts=$(help_entries <<<"$dhelp" | entry_fields Options -)
dman_opts=$(roff_entries "$dman" | entry_fields OPTIONS "" | only_options)
compare "volmgrd options" "--help Options" "$dhelp_opts" "volmgrd.8 OPTIONS" "$dman_opts"
compare "volmgrd options anywhere" "--help" "$(help_all_options <<<"$dhelp")" \
	"volmgrd.8" "$(roff_bolds "$dman" | only_options)"

vt_step "what volmgrd accepts (settings.c) against volmgrd --help"
dsrc=$srcdir/volmgr/daemon/settings.c
dcode_opts=$(getopt_options "$dsrc")
[[ -n $dcode_opts ]] || vt_fail "no options found in $dsrc: has the parsing moved?"
compare "volmgrd options" "settings.c" "$dcode_opts" "--help" "$dhelp_opts"

# ========================================================== volmgr-engined

vt_step "volmgr-engined --help against volmgr-engined.8, and what it accepts"
# (Its page's description names docker's options in bold -- the ones it
# refuses --, so only its OPTIONS section is compared.)
ehelp=$("$VOLMGR_ENGINED" --help)
eman=$mandir/volmgr-engined.8
ehelp_opts=$(help_entries <<<"$ehelp" | entry_fields Options -)
eman_opts=$(roff_entries "$eman" | entry_fields OPTIONS "" | only_options)
compare "volmgr-engined options" "--help Options" "$ehelp_opts" "volmgr-engined.8 OPTIONS" "$eman_opts"
ecode_opts=$(getopt_options "$srcdir/volmgr/engined/volmgr-engined.c")
[[ -n $ecode_opts ]] || vt_fail "no options found in volmgr-engined.c: has the parsing moved?"
compare "volmgr-engined options" "volmgr-engined.c" "$ecode_opts" "--help" "$ehelp_opts"

# ============================================================== volmgr-csi

vt_step "volmgr-csi --help against volmgr-csi.8, and what it accepts"
chelp=$("$VOLMGR_CSI" --help)
cman=$mandir/volmgr-csi.8
chelp_opts=$(help_entries <<<"$chelp" | entry_fields Options -)
cman_opts=$(roff_entries "$cman" | entry_fields OPTIONS "" | only_options)
compare "volmgr-csi options" "--help Options" "$chelp_opts" "volmgr-csi.8 OPTIONS" "$cman_opts"
ccode_opts=$(getopt_options "$srcdir/volmgr/csi/volmgr-csi.c")
[[ -n $ccode_opts ]] || vt_fail "no options found in volmgr-csi.c: has the parsing moved?"
compare "volmgr-csi options" "volmgr-csi.c" "$ccode_opts" "--help" "$chelp_opts"

# ================================================================= config

vt_step "volmgr/lib/config/config.c against volmgr.conf.5"
csrc=$srcdir/volmgr/lib/config/config.c
conf=$mandir/volmgr.conf.5
code_sections=$(grep -oE 'strcmp\(section, "[a-z]+"' "$csrc" | sed -E 's/.*"(.*)"/\1/' | sort -u)
code_keys=$(awk '
	match($0, /^static [a-z ]*\*?on_[a-z]+\(/) {
		fn = $0; sub(/\(.*/, "", fn); sub(/.*on_/, "", fn); sect = fn
	}
	{
		line = $0
		while (match(line, /strcmp\((section|key), "[^"]*"/)) {
			m = substr(line, RSTART, RLENGTH); line = substr(line, RSTART + RLENGTH)
			v = m; sub(/^[^"]*"/, "", v); sub(/"$/, "", v)
			if (m ~ /section/) sect = v; else print sect " " v
		}
	}' "$csrc" | sort -u)
man_sections=$(roff "$conf" | awk '/^\.SH /{ on = ($0 == ".SH SECTIONS") } on' |
	sed -nE 's/^\.SS "?\[([a-z]+)\]"?$/\1/p' | sort -u)
compare "configuration sections" "config.c" "$code_sections" "volmgr.conf.5 SECTIONS" "$man_sections"
man_keys=$(roff_entries "$conf" | awk -F'\t' '$1 == "SECTIONS" && $2 ~ /^\[[a-z]+\]$/ {
	s = $2; gsub(/[][]/, "", s); print s " " $3 }')
compare "configuration keys" "config.c" "$code_keys" "volmgr.conf.5" "$man_keys"

vt_step "the example configuration in volmgr.conf.5 is accepted by volmgrd"
# The first literal block of EXAMPLES, as scdoc wrote it (.nf ... .fi).
# awk reads to the end: leaving early could kill the writer with SIGPIPE,
# which pipefail makes this test's failure.
example=$VT_TMP/example.conf
roff "$conf" | awk '/^\.SH /{ ex = ($0 == ".SH EXAMPLES") } ex && !done && /^\.nf$/ { on = 1; next }
	on && /^\.fi$/ { on = 0; done = 1 } on && !/^\.RS/' |
	sed -e 's/\\e/\\/g' >"$example"
grep -q '^\[seed\]$' "$example" || vt_fail "no [seed] in the example of volmgr.conf.5: $(cat "$example")"
# volmgrd reads the configuration before it opens the pool: a pool path it
# cannot create stops it right after, without touching anything.
status=0
timeout 20 "$VOLMGRD" --config "$example" --pool /proc/volmgr-docs-test-no-pool \
	--plugin-socket "$VT_TMP/plugin.sock" --control-socket "$VT_TMP/control.sock" \
	>"$VT_TMP/volmgrd.log" 2>&1 || status=$?
if grep -q "error: $example:" "$VT_TMP/volmgrd.log"; then
	problem "volmgrd refuses the example of volmgr.conf.5: $(cat "$VT_TMP/volmgrd.log")"
else
	rules=$(grep -c 'seed rule: ' "$VT_TMP/volmgrd.log" || true)
	want=$(grep -c ' = cache:\| = volume:' "$example" || true)
	[[ $rules == "$want" && $rules -gt 0 ]] ||
		problem "volmgrd logged $rules seed rules for the example's $want: $(cat "$VT_TMP/volmgrd.log")"
	[[ $status != 0 ]] || problem "volmgrd started on /proc/volmgr-docs-test-no-pool?"
	vt_log "ok: example accepted ($rules seed rules), volmgrd then stopped at the pool (status $status)"
fi

((failed == 0)) || vt_fail "the documentation and the programs disagree (see MISMATCH above)"
