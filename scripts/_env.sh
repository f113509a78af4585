# Shared by scripts/demo and scripts/test (sourced, POSIX sh; run from the
# checkout's root). Nothing here installs into the system Python: Python
# packages go into the checkout's own virtual environment, .venv, which works
# on a stock Debian/Ubuntu python3 (PEP 668 "externally managed").

VENV=.venv

is_root() {
    [ "$(id -u)" = 0 ]
}

# apt_install PKG...: install Debian packages when root and apt is there;
# otherwise say what to run. Returns 1 when the packages are still missing.
apt_install() {
    if is_root && command -v apt-get >/dev/null 2>&1; then
        echo "$(basename "$0"): apt-get install $*" >&2
        if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null); then
            return 0
        fi
        echo "$(basename "$0"): could not install $*" >&2
        return 1
    fi
    echo "$(basename "$0"): missing: $*; as root run: apt-get install $*" >&2
    return 1
}

# ensure_venv: make .venv with python3 (>= 3.9) if it is missing or broken.
ensure_venv() {
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import pip' >/dev/null 2>&1; then
        return 0
    fi
    py=${PYTHON:-python3}
    if ! command -v "$py" >/dev/null 2>&1; then
        apt_install python3 python3-venv || exit 1
    fi
    if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then
        echo "$(basename "$0"): $py is $("$py" -V 2>&1); mpactors needs Python 3.9 or later (set PYTHON=...)" >&2
        exit 1
    fi
    rm -rf "$VENV"
    if ! "$py" -m venv "$VENV" >/dev/null 2>&1; then
        # Debian and Ubuntu ship venv's ensurepip separately.
        rm -rf "$VENV"
        ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
        if ! is_root; then
            echo "$(basename "$0"): '$py -m venv' needs the venv module; as root run: apt-get install python$ver-venv (or python3-venv), or run this script as root" >&2
            exit 1
        fi
        apt_install "python$ver-venv" || apt_install python3-venv || {
            echo "$(basename "$0"): '$py -m venv' needs the venv module (Debian/Ubuntu: apt-get install python3-venv)" >&2
            exit 1
        }
        "$py" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
}

# venv_pip ARGS...: pip install into .venv.
venv_pip() {
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
}
