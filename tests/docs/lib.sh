# shellcheck shell=bash
# Helpers of the documentation tests (tests/docs/*.sh): reading man pages
# as scdoc builds them, and `--help` texts.  The extraction rules are
# described at the top of help-vs-man.sh.

# ------------------------------------------------------------ roff helpers

# The page without scdoc's zero-width escapes, apostrophes made plain.
roff() { sed -e 's/\\&//g' -e "s/\\\\(aq/'/g" "$1"; }

# One line per entry of the page: SECTION <tab> SUBSECTION <tab> the bold
# runs of the entry line, tab-separated.
roff_entries() {
	roff "$1" | awk '
		function bolds(s,   out) {
			out = ""
			while (match(s, /\\fB[^\\]*\\fR/)) {
				out = out "\t" substr(s, RSTART + 3, RLENGTH - 6)
				s = substr(s, RSTART + RLENGTH)
			}
			return out
		}
		/^\.SH / { sh = substr($0, 5); gsub(/"/, "", sh); ss = "" }
		/^\.SS / { ss = substr($0, 5); gsub(/"/, "", ss) }
		$0 == ".RS 4" && prev != "" && prev !~ /^\./ { print sh "\t" ss bolds(prev) }
		{ prev = $0 }'
}

# Every bold run of the page, one per line.
roff_bolds() { roff "$1" | grep -o '\\fB[^\\]*\\fR' | sed -e 's/^\\fB//' -e 's/\\fR$//' || true; }

# Fields 3.. of the lines whose field 1 (and field 2, if given) match.
entry_fields() {
	awk -F'\t' -v a="$1" -v b="${2-}" -v from="${3:-3}" \
		'$1 == a && (b == "" || $2 == b) { for (i = from; i <= NF; i++) print $i }'
}
only_options() { grep -E '^--?[A-Za-z][A-Za-z-]*$' || true; }

# ------------------------------------------------------------ help helpers

# One line per entry of --help: BLOCK <tab> COMMAND <tab> its options.  For
# the Options block COMMAND is "-".
help_entries() {
	awk '
		function opts(s,   out) {
			out = ""
			while (match(s, /(^|[][ |(,])--?[A-Za-z][A-Za-z-]*/)) {
				o = substr(s, RSTART, RLENGTH); sub(/^[^-]/, "", o)
				out = out "\t" o
				s = substr(s, RSTART + RLENGTH)
			}
			return out
		}
		/^[A-Za-z][A-Za-z ]*:$/ { block = substr($0, 1, length($0) - 1); next }
		/^$/ { block = ""; next }
		block != "" && /^  [^ ]/ {
			syn = substr($0, 3); sub(/  +.*$/, "", syn)
			n = split(syn, w, " ")
			cmd = (block == "Options") ? "-" : ((w[1] == "cache" || w[1] == "pool") ? w[1] " " w[2] : w[1])
			print block "\t" cmd opts(syn)
			next
		}
		block != "" && cmd != "" && /^   +\[/ {
			syn = $0; sub(/^ +/, "", syn); sub(/  +.*$/, "", syn)
			print block "\t" cmd opts(syn)
		}'
}
help_all_options() { grep -oE '(^|[][ |(,])--?[A-Za-z][A-Za-z-]*' | sed -E 's/^[^-]//' || true; }
