#!/usr/bin/env sh
# Per-device MQTT accounts and topic ACLs for a fleet: writes DIR/acl, DIR/passwd (hashed) and
# DIR/credentials.txt (clear passwords, mode 0600: give each device its own, then delete the file).
# Usage: deploy/mosquitto/make-credentials.sh deploy/config/city /etc/mosquitto/pumpwatch
set -eu
[ $# -eq 2 ] || { echo "usage: $0 FLEET_DIR OUT_DIR" >&2; exit 2; }
exec pumpwatch mqtt-credentials "$1" "$2"
