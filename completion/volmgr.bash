# shellcheck shell=bash
# bash completion for volmgr(8) and volmgrd(8).
#
# Installed as bash-completion/completions/volmgr, with volmgrd a symlink
# to it.  Self-contained: it uses none of bash-completion's helpers, so it
# also works when sourced on its own.
#
# Volume and cache names come from the daemon (`volmgr ls -q`,
# `volmgr cache ls --json`), asked only when the control socket exists,
# with a time limit and without any message: a completion never prints
# anything and never waits long.

# Split words back together: bash splits "cache:proj" into "cache" ":"
# "proj" and "--socket=PATH" into "--socket" "=" "PATH" (both ':' and '='
# are in COMP_WORDBREAKS).  Neither a lone ':' nor a lone '=' is ever an
# argument of volmgr, so a word made only of them joins its neighbours.
# Sets _vm_words (the words up to the cursor) and _vm_cword.
_volmgr_words() {
	_vm_words=()
	_vm_cword=0
	local i w glue=0 n
	for ((i = 0; i < ${#COMP_WORDS[@]} && i <= COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		n=${#_vm_words[@]}
		if ((i > 0 && n > 0)) && [[ -n $w && $w != *[!:=]* ]]; then
			_vm_words[n - 1]+=$w
			glue=1
		elif ((glue && n > 0)); then
			_vm_words[n - 1]+=$w
			glue=0
		else
			_vm_words+=("$w")
			glue=0
		fi
	done
	_vm_cword=$((${#_vm_words[@]} - 1))
}

# Readline replaces only the text after the last word-break character, so
# strip what comes before it (from "cache:proj" keep "proj").
_volmgr_trim_breaks() {
	local cur=$1 prefix i
	local breaks=${COMP_WORDBREAKS-$' \t\n"\'><=;|&(:'}
	prefix=$cur
	while [[ -n $prefix ]]; do
		case ${prefix: -1} in
		:|=) [[ $breaks == *"${prefix: -1}"* ]] && break ;;
		esac
		prefix=${prefix%?}
	done
	[[ -n $prefix ]] || return 0
	for i in "${!COMPREPLY[@]}"; do
		COMPREPLY[i]=${COMPREPLY[i]#"$prefix"}
	done
}

_volmgr_compopt() { compopt "$@" 2>/dev/null || :; }

# COMPREPLY += the words of $1 that start with $2.
_volmgr_add() {
	local IFS=$' \t\n' w
	for w in $1; do
		[[ $w == "$2"* ]] && COMPREPLY+=("$w")
	done
}

# Directories (and with "f", files) starting with $1.
_volmgr_paths() {
	local kind=${2:-d} p
	_volmgr_compopt -o filenames
	while IFS= read -r p; do
		COMPREPLY+=("$p")
	done < <(compgen -"$kind" -- "$1")
}

# Run `volmgr --socket SOCKET ARGS...` for names: only when the socket
# exists, at most 2 s, stderr dropped, nothing on failure.
_volmgr_query() {
	local bin=${_vm_words[0]} sock=${VOLMGR_SOCKET:-/run/volmgr/control.sock} i
	for ((i = 1; i < _vm_cword; i++)); do
		case ${_vm_words[i]} in
		--socket) sock=${_vm_words[i + 1]} ;;
		--socket=*) sock=${_vm_words[i]#--socket=} ;;
		esac
	done
	# A leading ~/ as typed (the words are not expanded).
	# shellcheck disable=SC2088
	[[ $bin == "~/"* ]] && bin=$HOME/${bin#"~/"}
	# shellcheck disable=SC2088
	[[ $sock == "~/"* ]] && sock=$HOME/${sock#"~/"}
	[[ -S $sock ]] || return 0
	type -P "$bin" >/dev/null 2>&1 || [[ -x $bin ]] || return 0
	local out
	if type -P timeout >/dev/null 2>&1; then
		out=$(timeout 2 "$bin" --socket "$sock" "$@" 2>/dev/null </dev/null) || return 0
	else
		out=$("$bin" --socket "$sock" "$@" 2>/dev/null </dev/null) || return 0
	fi
	printf '%s\n' "$out"
}

_volmgr_volumes() { _volmgr_query ls -q; }

# `cache ls --json` prints an array of objects indented by two spaces per
# level: a cache's own "name" key is the one indented by exactly four.
_volmgr_caches() {
	_volmgr_query cache ls --json |
		sed -n 's/^    "name": "\([^"\\]*\)",\{0,1\}$/\1/p'
}

# A snapshot SOURCE: cache:NAME, volume:NAME or a directory.
_volmgr_source() {
	local cur=$1 n
	case $cur in
	cache:*)
		for n in $(_volmgr_caches); do
			[[ cache:$n == "$cur"* ]] && COMPREPLY+=("cache:$n")
		done
		;;
	volume:*)
		for n in $(_volmgr_volumes); do
			[[ volume:$n == "$cur"* ]] && COMPREPLY+=("volume:$n")
		done
		;;
	*)
		# A PATH must hold a "/" or start with ".": directories are
		# completed with their "/", so any one chosen is a PATH.
		_volmgr_add "cache: volume:" "$cur"
		if ((${#COMPREPLY[@]})); then
			_volmgr_compopt -o nospace
		fi
		_volmgr_paths "$cur"
		;;
	esac
}

_volmgr() {
	local cur prev i cmd='' cmdi=0 sub='' subi=0
	COMPREPLY=()
	_volmgr_words
	cur=${_vm_words[_vm_cword]}
	prev=
	((_vm_cword > 0)) && prev=${_vm_words[_vm_cword - 1]}

	# The command: the first word after the global options.
	for ((i = 1; i < _vm_cword; i++)); do
		case ${_vm_words[i]} in
		--socket) i=$((i + 1)) ;;
		-*) ;;
		*) cmd=${_vm_words[i]} cmdi=$i; break ;;
		esac
	done

	if [[ -z $cmd ]]; then
		case $prev in
		--socket) _volmgr_paths "$cur" f ;;
		*)
			case $cur in
			--socket=*)
				_volmgr_paths "${cur#--socket=}" f
				for i in "${!COMPREPLY[@]}"; do
					COMPREPLY[i]=--socket=${COMPREPLY[i]}
				done
				;;
			-*) _volmgr_add "--socket --help -h --version" "$cur" ;;
			*) _volmgr_add "snapshot create ls inspect rm cache which gc pool metrics status" "$cur" ;;
			esac
			;;
		esac
		_volmgr_trim_breaks "$cur"
		return 0
	fi

	if [[ $cmd == cache || $cmd == pool ]]; then
		for ((i = cmdi + 1; i < _vm_cword; i++)); do
			case ${_vm_words[i]} in
			-*) ;;
			*) sub=${_vm_words[i]} subi=$i; break ;;
			esac
		done
		if [[ -z $sub ]]; then
			if [[ $cmd == cache ]]; then
				_volmgr_add "import create update promote export import-stream ls inspect rm" "$cur"
			else
				_volmgr_add "init status" "$cur"
			fi
			return 0
		fi
		cmd="$cmd $sub"
		cmdi=$subi
	fi

	# Options of each command; those that take a value; how many
	# positional arguments it takes (-1: any number).
	local opts='' valopts='' repeat=--label
	case $cmd in
	snapshot | create) opts="--label --ttl --quota --json --" valopts="--label --ttl --quota" ;;
	status) opts="--json" ;;
	ls | list) opts="--json --quiet -q" ;;
	"cache ls" | "cache list") opts="--json" ;;
	"cache create") opts="--git --branch" valopts="--git --branch" ;;
	"cache promote") opts="--commit --commit-time --json" valopts="--commit --commit-time" ;;
	"pool init")
		opts="--pool --size --image --at-boot --unit-dir"
		valopts="--pool --size --image --unit-dir" ;;
	"pool status") opts="--pool --json" valopts="--pool" ;;
	which) opts="--json --mount" ;;
	gc) opts="--dry-run --label --json" valopts="--label" ;;
	"cache import") opts="--json --" ;;
	"cache import-stream") opts="--git-url --json --" valopts="--git-url" ;;
	"cache export") opts="--" ;;
	inspect | rm | remove | "cache inspect" | "cache rm" | "cache remove")
		opts="--" ;;
	esac

	# A value for an option: directories and files where they are paths;
	# nothing for the rest (labels, durations, sizes, URLs and branches are
	# the user's).
	if [[ " $valopts " == *" $prev "* ]]; then
		case $prev in
		--pool | --unit-dir) _volmgr_paths "$cur" ;;
		--image) _volmgr_paths "$cur" f ;;
		esac
		return 0
	fi

	# Positional arguments before the cursor, and options already given.
	local npos=0 seen=" " options=1
	for ((i = cmdi + 1; i < _vm_cword; i++)); do
		local w=${_vm_words[i]}
		if ((options)) && [[ $w == -- ]]; then
			options=0
		elif ((options)) && [[ " $valopts " == *" $w "* ]]; then
			seen+="$w "
			i=$((i + 1))
		elif ((options)) && [[ $w == -?* ]]; then
			seen+="${w%%=*} "
		else
			npos=$((npos + 1))
		fi
	done

	# The options not given yet (--label may be repeated; -q is --quiet).
	[[ $seen == *" -q "* ]] && seen+="--quiet "
	[[ $seen == *" --quiet "* ]] && seen+="-q "
	local o avail=''
	for o in $opts; do
		[[ $seen == *" $o "* && " $repeat " != *" $o "* ]] && continue
		avail+="$o "
	done
	if ((options)) && [[ $cur == -* ]]; then
		_volmgr_add "$avail" "$cur"
		_volmgr_trim_breaks "$cur"
		return 0
	fi

	case $cmd in
	snapshot)
		((npos == 0)) && _volmgr_source "$cur"
		;;
	inspect | rm | remove)
		_volmgr_add "$(_volmgr_volumes)" "$cur"
		;;
	"cache update")
		((npos == 0)) && _volmgr_add "$(_volmgr_caches)" "$cur"
		;;
	"cache promote")
		((npos == 0)) && _volmgr_paths "$cur"
		((npos == 1)) && _volmgr_add "$(_volmgr_caches)" "$cur"
		;;
	"cache inspect" | "cache rm" | "cache remove")
		_volmgr_add "$(_volmgr_caches)" "$cur"
		;;
	"cache import")
		((npos == 1)) && _volmgr_paths "$cur"
		;;
	"cache export")
		((npos == 0)) && _volmgr_add "$(_volmgr_caches)" "$cur"
		((npos == 1)) && _volmgr_paths "$cur" f
		;;
	"cache import-stream")
		((npos == 0)) && _volmgr_paths "$cur" f
		;;
	which)
		((npos == 0)) && _volmgr_paths "$cur"
		;;
	ls | list | gc | status | "cache ls" | "cache list" | "pool init" | "pool status")
		# No positional arguments: offer the options.
		((options)) && _volmgr_add "$avail" "$cur"
		;;
	"cache create")
		# After the name, --git is still needed.
		((options && npos >= 1)) && _volmgr_add "$avail" "$cur"
		;;
	esac
	_volmgr_trim_breaks "$cur"
	return 0
}

_volmgrd() {
	local cur prev i
	COMPREPLY=()
	_volmgr_words
	cur=${_vm_words[_vm_cword]}
	prev=
	((_vm_cword > 0)) && prev=${_vm_words[_vm_cword - 1]}
	case $prev in
	--pool)
		_volmgr_paths "$cur"
		return 0
		;;
	--plugin-socket | --control-socket | --job-socket | --config)
		_volmgr_paths "$cur" f
		return 0
		;;
	--control-group)
		_volmgr_add "$(compgen -g)" "$cur"
		return 0
		;;
	--backend)
		_volmgr_add "auto btrfs reflink copy" "$cur"
		return 0
		;;
	esac
	case $cur in
	--pool=* | --plugin-socket=* | --control-socket=* | --job-socket=* | --config=*)
		_volmgr_paths "${cur#*=}" "$([[ $cur == --pool=* ]] && echo d || echo f)"
		for i in "${!COMPREPLY[@]}"; do
			COMPREPLY[i]=${cur%%=*}=${COMPREPLY[i]}
		done
		;;
	--control-group=*)
		for i in $(compgen -g -- "${cur#*=}"); do
			COMPREPLY+=("--control-group=$i")
		done
		;;
	--backend=*)
		for i in auto btrfs reflink copy; do
			[[ $i == "${cur#*=}"* ]] && COMPREPLY+=("--backend=$i")
		done
		;;
	*)
		local o avail='' seen=" "
		for ((i = 1; i < _vm_cword; i++)); do
			seen+="${_vm_words[i]%%=*} "
		done
		for o in --pool --plugin-socket --control-socket --control-group --job-socket --config --backend --help -h --version; do
			[[ $seen == *" $o "* ]] || avail+="$o "
		done
		_volmgr_add "$avail" "$cur"
		;;
	esac
	_volmgr_trim_breaks "$cur"
	return 0
}

complete -F _volmgr volmgr
complete -F _volmgrd volmgrd
