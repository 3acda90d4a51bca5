#!/usr/bin/env bash
# Lint every built man page: mandoc -Tlint at the "warning" level (plus
# groff's own warnings where groff is installed), and fail on any message
# except the two that scdoc's generator itself causes.
#
# Environment: VT_SRCDIR (tests/), VT_BUILDDIR (the meson build directory,
# where the pages are in man/).
source "${VT_SRCDIR:-$(dirname "$0")/..}/lib/common.sh"
vt_init man-lint
vt_require_cmd mandoc

srcdir=$(realpath "${VT_SRCDIR:-$(dirname "$0")/..}/..")
builddir=$(realpath -m "${VT_BUILDDIR:-$srcdir/build}")
mandir=$builddir/man

# scdoc writes ".P" before every ".SH" and between consecutive blocks; mandoc
# drops each one with one of these two warnings.  They say nothing about a
# page's text, and the .scd source cannot avoid them.  Any other message,
# at the warning level or above, fails the test.
scdoc_artefacts='WARNING: skipping paragraph macro: PP (empty|after SH|after SS)$'

vt_step "every man/*.scd has a built page"
pages=()
for scd in "$srcdir"/man/*.scd; do
	page=$mandir/$(basename "$scd" .scd)
	[[ -s $page ]] || vt_fail "$page is not built (is scdoc installed? run ninja -C $builddir)"
	pages+=("$page")
done
((${#pages[@]} > 0)) || vt_fail "no man/*.scd in $srcdir"
vt_log "pages: ${pages[*]##*/}"

failed=0
for page in "${pages[@]}"; do
	vt_step "mandoc -Tlint -W warning ${page##*/}"
	# mandoc exits non-zero for warnings, including the artefacts: judge
	# its messages, not its status.
	out=$(mandoc -Tlint -W warning "$page" 2>&1 || true)
	bad=$(grep -vE "$scdoc_artefacts" <<<"$out" | grep -v '^$' || true)
	skipped=$(grep -cE "$scdoc_artefacts" <<<"$out" || true)
	if [[ -n $bad ]]; then
		printf '%s\n' "$bad" >&2
		failed=1
	else
		vt_log "ok: no warnings (besides $skipped scdoc paragraph artefacts)"
	fi

	if command -v groff >/dev/null 2>&1; then
		vt_step "groff -ww -t -man -z ${page##*/}"
		out=$(groff -ww -t -man -z "$page" 2>&1 || echo "groff exited $?")
		if [[ -n $out ]]; then
			printf '%s\n' "$out" >&2
			failed=1
		else
			vt_log "ok: groff has no warnings"
		fi
	fi

	vt_step "${page##*/}: title and section match the file name"
	name=${page##*/}
	th=$(grep -m1 '^\.TH ' "$page")
	[[ $th == ".TH \"${name%.*}\" \"${name##*.}\""* ]] ||
		vt_fail "$name: .TH line is '$th', expected title ${name%.*}, section ${name##*.}"
	vt_log "ok: $th"
done
((failed == 0)) || vt_fail "lint warnings above"
