#!/bin/sh
# Writes one random password per Kafka user into deploy/secrets/, once (existing
# files are kept). Each file is mode 0400 and owned by the uid of the container
# that reads it: 1000 (the apache/kafka image's user) for the broker's own, 10001
# (the corredor image's user) for the Secretariat's and the countries'. The init
# service that creates the SCRAM users runs as root and reads them all.
# Run with sudo, from the repository root or anywhere:  sudo deploy/make-secrets.sh
set -eu
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"
make() {  # name uid
    file="$dir/$1"
    if [ ! -s "$file" ]; then
        # URL-safe, no commas, quotes or blanks: fits JAAS lines and SCRAM.
        python3 -c 'import secrets; print(secrets.token_urlsafe(24))' > "$file"
    fi
    chown "$2:$2" "$file"
    chmod 0400 "$file"
}
make kafka_admin_password 1000
make kafka_controller_password 1000
make kafka_secretariat_password 10001
make kafka_pan_password 10001
make kafka_cri_password 10001
echo "secrets in $dir"
