#!/bin/bash
# Entry point of the `kafka` service (apache/kafka:4.4.0, KRaft, one combined
# broker + controller). Writes server.properties from the mounted secrets, formats
# the data volume on first start, then runs the broker.
#
# Listeners (every one authenticated):
#   CLIENT      :9092  SASL_SSL, SCRAM-SHA-512   countries and the Secretariat
#   CONTROLLER  :9093  SASL_PLAINTEXT, PLAIN     the KRaft quorum only (user controller)
#   INTERNAL    :9094  SASL_SSL, PLAIN           inter-broker traffic and the init
#                                                service (user admin)
# Why PLAIN inside: SCRAM users live in the cluster metadata, so the admin that
# creates them must log in some other way; PLAIN checks against this file.
# The passwords are read from /run/secrets, never from the compose file, and the
# properties file holding them is private (umask 077).
set -euo pipefail

secret() {
    local value
    value="$(tr -d '\r\n' < "/run/secrets/$1")"
    [ -n "$value" ] || { echo "secret $1 is empty" >&2; exit 1; }
    printf '%s' "$value"
}

: "${KAFKA_CLUSTER_ID:?set KAFKA_CLUSTER_ID (22 characters of URL-safe base64)}"
ADVERTISED_HOST="${KAFKA_ADVERTISED_HOST:-kafka}"
DATA=/var/lib/kafka/data
CONF=/tmp/corredor-kafka/server.properties
ADMIN_PASSWORD="$(secret kafka_admin_password)"
CONTROLLER_PASSWORD="$(secret kafka_controller_password)"

umask 077
mkdir -p "$(dirname "$CONF")"
cat > "$CONF" <<PROPERTIES
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@kafka:9093
listeners=CLIENT://:9092,CONTROLLER://:9093,INTERNAL://:9094
advertised.listeners=CLIENT://${ADVERTISED_HOST}:9092,INTERNAL://kafka:9094
listener.security.protocol.map=CLIENT:SASL_SSL,INTERNAL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=INTERNAL
controller.listener.names=CONTROLLER
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.internal.sasl.enabled.mechanisms=PLAIN
listener.name.internal.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="${ADMIN_PASSWORD}" user_admin="${ADMIN_PASSWORD}";
sasl.mechanism.inter.broker.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="${CONTROLLER_PASSWORD}" user_controller="${CONTROLLER_PASSWORD}";
sasl.mechanism.controller.protocol=PLAIN
ssl.keystore.type=PEM
ssl.keystore.location=/pki/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=/pki/ca.pem
ssl.endpoint.identification.algorithm=https
ssl.client.auth=none
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:controller
log.dirs=${DATA}/logs
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPERTIES

if [ ! -f "${DATA}/logs/meta.properties" ]; then
    /opt/kafka/bin/kafka-storage.sh format -t "${KAFKA_CLUSTER_ID}" -c "$CONF"
fi
exec /opt/kafka/bin/kafka-server-start.sh "$CONF"
