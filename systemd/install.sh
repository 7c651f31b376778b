#!/usr/bin/env bash
# Install or update wabot as a systemd service from this checkout. Run as root:
#
#   sudo systemd/install.sh                   # one WhatsApp number: wabot.service
#   sudo systemd/install.sh --instance shop1  # one of several numbers: wabot@shop1.service
#
# Configuration: what `wabot init` wrote in this checkout (config/wabot.toml,
# config/business.yaml, .env, knowledge/) goes to /etc/wabot, else the examples (to edit);
# each file says which it got. Safe to rerun after `git pull`: the package is reinstalled
# and running units restarted; existing configuration is never overwritten.
#
# Options:
#   --instance NAME  set up wabot@NAME (config /etc/wabot/NAME.toml, state /var/lib/wabot/NAME)
#   --no-start       install, but do not enable, start or restart any unit
#   --skip-venv      leave /opt/wabot/venv alone (configuration and units only)
#   --dry-run        print every step, change nothing
# Environment:
#   DESTDIR  install under this root (packaging, tests); skips useradd, chown and systemctl
#   PYTHON   interpreter for the virtualenv (default: python3; 3.11 or newer)
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PYTHON=${PYTHON:-python3}
WABOT_USER=wabot
PREFIX=/opt/wabot
VENV=$PREFIX/venv
CONF=/etc/wabot
STATE=/var/lib/wabot
UNITS=/etc/systemd/system

DRY_RUN=0
START=1
VENV_STEP=1
INSTANCE=

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "install.sh: $*" >&2; exit 1; }
say() { printf '\n== %s\n' "$*"; }

# Every change goes through run: printed first, skipped on --dry-run.
run() {
    printf '+'; printf ' %q' "$@"; printf '\n'
    if [ "$DRY_RUN" = 0 ]; then "$@"; fi
}

# Changes to the live system (accounts, ownership, systemd) are skipped under DESTDIR.
system() {
    if [ -z "$DESTDIR" ]; then run "$@"; return; fi
    printf '+ (skipped under DESTDIR)'; printf ' %q' "$@"; printf '\n'
}

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
            --instance) [ $# -ge 2 ] || die "--instance needs a name"; INSTANCE=$2; shift ;;
            --instance=*) INSTANCE=${1#*=} ;;
            --no-start) START=0 ;;
            --skip-venv) VENV_STEP=0 ;;
            --dry-run) DRY_RUN=1 ;;
            -h|--help) usage; exit 0 ;;
            *) die "unknown option $1 (see --help)" ;;
        esac
        shift
    done
    # The name becomes a unit instance and file names: keep it plain.
    if [ -n "$INSTANCE" ] && ! [[ $INSTANCE =~ ^[A-Za-z0-9][A-Za-z0-9_-]*$ ]]; then
        die "instance name '$INSTANCE': use letters, digits, '-' and '_'"
    fi
}

preflight() {
    [ -f "$SRC/pyproject.toml" ] || die "$SRC is not a wabot checkout (no pyproject.toml)"
    if [ "$DRY_RUN" = 0 ] && [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
        die "run as root (or try --dry-run, or DESTDIR=/some/dir)"
    fi
    if [ "$VENV_STEP" = 1 ] && [ "$DRY_RUN" = 0 ]; then
        command -v "$PYTHON" >/dev/null \
            || die "$PYTHON not found: install Python 3.11 or newer (Debian/Ubuntu: apt-get install python3 python3-venv)"
        "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
            || die "$PYTHON is older than 3.11 (set PYTHON=python3.11 or newer)"
        # Debian and Ubuntu ship venv without ensurepip unless python3-venv is installed.
        "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null \
            || die "$PYTHON cannot create virtualenvs: apt-get install python3-venv (or python3.X-venv)"
    fi
    command -v git >/dev/null \
        || echo "note: git is not installed; updates (git pull) need it: apt-get install git" >&2
}

create_user() {
    say "system user $WABOT_USER"
    if [ -z "$DESTDIR" ] && id -u "$WABOT_USER" >/dev/null 2>&1; then
        echo "exists"
        return
    fi
    local nologin
    nologin=$(command -v nologin || echo /usr/sbin/nologin)
    system useradd --system --user-group --home-dir "$STATE" --no-create-home \
        --shell "$nologin" --comment "wabot WhatsApp daemon" "$WABOT_USER"
}

install_venv() {
    say "virtualenv $VENV"
    if [ "$VENV_STEP" = 0 ]; then echo "skipped (--skip-venv)"; return; fi
    run install -d -m 0755 "$DESTDIR$PREFIX"
    if [ ! -x "$DESTDIR$VENV/bin/python" ]; then
        run "$PYTHON" -m venv "$DESTDIR$VENV"
    fi
    run "$DESTDIR$VENV/bin/python" -m pip install --quiet --upgrade pip
    # --upgrade reinstalls the checkout even when the version number did not change.
    run "$DESTDIR$VENV/bin/python" -m pip install --quiet --upgrade "$SRC"
    if [ -f "$SRC/README.md" ]; then
        run install -m 0644 "$SRC/README.md" "$DESTDIR$PREFIX/README.md"
    fi
}

# The configuration: what `wabot init` wrote in this checkout (config/wabot.toml,
# config/business.yaml, .env, knowledge/), else the examples. A file already in /etc/wabot
# is never overwritten. Sets NEEDS_EDIT=1 when an example (or nothing) was installed: the
# operator has to edit it before the service can start.
install_config() {
    local owned=$1 example=$2 target=$DESTDIR$CONF/$3 mode=$4 source
    if [ -e "$target" ]; then
        echo "keep $target"
        return
    fi
    if [ -f "$SRC/$owned" ]; then
        source=$SRC/$owned
        echo "install $target from $source (yours, as \`wabot init\` wrote it)"
    elif [ -f "$SRC/config/$example" ]; then
        source=$SRC/config/$example
        echo "install $target from the example $source: edit it (no $owned in $SRC)"
        NEEDS_EDIT=1
    else
        echo "warning: neither $SRC/$owned nor $SRC/config/$example exists; create $target yourself" >&2
        NEEDS_EDIT=1
        return
    fi
    case $target in
        *.toml) install_toml "$source" "$target" "$mode" ;;
        *) run install -m "$mode" "$source" "$target" ;;
    esac
    system chown "root:$WABOT_USER" "$target"
}

# The settings file with its state_dir and business_file set to where the service keeps
# them ("data" and "config/business.yaml" name the checkout's files, relative to the
# project folder; under /etc/wabot they would be /etc/wabot/data and so on).
install_toml() {
    local source=$1 target=$2 mode=$3
    local state=$STATE${INSTANCE:+/$INSTANCE} profile=$CONF/business.yaml
    printf '+ install -m %s %q %q   # state_dir = "%s", business_file = "%s"\n' \
        "$mode" "$source" "$target" "$state" "$profile"
    if [ "$DRY_RUN" = 1 ]; then return; fi
    local tmp
    tmp=$(mktemp)
    # Top-level keys only (before the first [section]); missing ones are added there.
    awk -v state="$state" -v profile="$profile" '
        function missing() {
            if (!s) print "state_dir = \"" state "\"  # set by systemd/install.sh"
            if (!b) print "business_file = \"" profile "\"  # set by systemd/install.sh"
            s = b = 1
        }
        !top && /^[[:space:]]*\[/ { missing(); top = 1 }
        !top && /^[[:space:]]*state_dir[[:space:]]*=/ {
            print "state_dir = \"" state "\"  # set by systemd/install.sh"; s = 1; next }
        !top && /^[[:space:]]*business_file[[:space:]]*=/ {
            print "business_file = \"" profile "\"  # set by systemd/install.sh"; b = 1; next }
        { print }
        END { if (!top) missing() }
    ' "$source" >"$tmp"
    install -m "$mode" "$tmp" "$target"
    rm -f "$tmp"
}

# The documents and pictures the agents search (knowledge.dir = "knowledge", relative to
# the config file's folder): the checkout's knowledge/ when there is one.
install_knowledge() {
    local target=$DESTDIR$CONF/knowledge
    if [ -e "$target" ]; then
        echo "keep $target"
    elif [ -d "$SRC/knowledge" ]; then
        echo "install $target from $SRC/knowledge (yours)"
        run cp -R "$SRC/knowledge" "$target"
        run chmod -R u=rwX,g=rX,o= "$target"
        system chown -R "root:$WABOT_USER" "$target"
    else
        echo "no $SRC/knowledge: the agents search the catalog only (add documents to $CONF/knowledge)"
    fi
}

install_configs() {
    say "configuration $CONF"
    local name=${INSTANCE:-wabot}
    run install -d -m 0750 "$DESTDIR$CONF"
    system chown "root:$WABOT_USER" "$DESTDIR$CONF"
    NEEDS_EDIT=0
    install_config config/wabot.toml wabot.example.toml "$name.toml" 0640
    install_config .env wabot.env.example "$name.env" 0640
    # One business description (and one knowledge folder) may serve several numbers:
    # shared, installed once.
    install_config config/business.yaml business.example.yaml business.yaml 0640
    install_knowledge
}

install_state_dir() {
    # systemd creates it on start; `wabot login` may run before the first start.
    local dir=$STATE${INSTANCE:+/$INSTANCE}
    say "state $dir"
    run install -d -m 0700 "$DESTDIR$dir"
    system chown "$WABOT_USER:$WABOT_USER" "$DESTDIR$dir"
}

install_units() {
    say "units $UNITS"
    run install -d -m 0755 "$DESTDIR$UNITS"
    run install -m 0644 "$SRC/systemd/wabot.service" "$DESTDIR$UNITS/wabot.service"
    run install -m 0644 "$SRC/systemd/wabot@.service" "$DESTDIR$UNITS/wabot@.service"
    system systemctl daemon-reload
}

start_units() {
    local unit=wabot${INSTANCE:+@$INSTANCE}.service
    say "service $unit"
    if [ "$START" = 0 ]; then echo "not started (--no-start)"; return; fi
    # An update: whatever runs the old code is restarted (no-op for stopped units).
    system systemctl try-restart --no-block wabot.service 'wabot@*.service'
    if [ "$NEEDS_EDIT" = 1 ]; then
        next_steps "$unit"
        return
    fi
    # --no-block: start-up may wait for a QR scan; follow it in the journal.
    system systemctl enable --now --no-block "$unit"
    echo "follow it with: journalctl -fu $unit"
}

next_steps() {
    local name=${INSTANCE:-wabot}
    cat <<EOF
Configuration is new or missing: edit it, then start the service:
  \$EDITOR $CONF/$name.toml $CONF/$name.env $CONF/business.yaml
  systemctl enable --now --no-block $1   # start-up may wait for a QR scan
  journalctl -fu $1      # scan the QR code it prints (or see $STATE${INSTANCE:+/$INSTANCE}/login-qr.png)
EOF
}

main() {
    parse_args "$@"
    preflight
    if [ "$DRY_RUN" = 1 ]; then echo "dry run: nothing will be changed"; fi
    create_user
    install_venv
    install_configs
    install_state_dir
    install_units
    start_units
}

main "$@"
