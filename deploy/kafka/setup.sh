#!/bin/bash
# One-off setup of the production broker: SCRAM users, topics (auto-creation is off) and the
# per-principal ACLs of the trust model. Idempotent: run it again after adding a miner.
#   MINERS="miner-a miner-b" OPERATORS="ops" NAMESPACE="" ./setup.sh
set -euo pipefail
BIN=/opt/kafka/bin
CONFIG=/tmp/admin.properties
cat > "$CONFIG" <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(cat /run/secrets/kafka_admin_password)";
PROPS
SERVER=kafka:9092
NS=${NAMESPACE:-}
PARTITIONS=${PARTITIONS:-4}
kafka() { "$BIN/$1" --bootstrap-server "$SERVER" --command-config "$CONFIG" "${@:2}"; }
acl() { kafka kafka-acls.sh --add --force "$@" >/dev/null; }
user() {  # user NAME: its SCRAM credential from /run/secrets/kafka_<name>_password
  local secret="/run/secrets/kafka_${1//-/_}_password"
  kafka kafka-configs.sh --alter --entity-type users --entity-name "$1" \
    --add-config "SCRAM-SHA-512=[password=$(cat "$secret")]" >/dev/null
}
topic() { kafka kafka-topics.sh --create --if-not-exists --topic "$NS$1" --partitions "$PARTITIONS" --replication-factor 1 "${@:2}" >/dev/null; }

for t in sot.batches sot.labels ensemble.alerts ensemble.clusters ensemble.batches validator.results miner.errors \
         miners.registry validator.inbox validator.control dlq.scores dlq.sot dlq.registry; do topic "$t"; done
# a score record's time is the broker's append time, never the miner's: the validator orders submissions by it
for m in $MINERS; do
  topic "scores.$m" --config message.timestamp.type=LogAppendTime
  kafka kafka-configs.sh --alter --entity-type topics --entity-name "${NS}scores.$m" \
    --add-config message.timestamp.type=LogAppendTime >/dev/null  # topics made before this rule
done

for u in sot validator gateway minio $MINERS $OPERATORS; do user "$u"; done

# SOT (and MinIO's notifications): write sot.*
for u in sot minio; do acl --allow-principal "User:$u" --operation Write --operation Describe --topic "${NS}sot." --resource-pattern-type prefixed; done
# miners: write only their own score topic, the registry and error topic; read only sot.*
for m in $MINERS; do
  acl --allow-principal "User:$m" --operation Write --operation Describe --topic "${NS}scores.$m"
  acl --allow-principal "User:$m" --operation Write --operation Describe --topic "${NS}miners.registry"
  acl --allow-principal "User:$m" --operation Write --operation Describe --topic "${NS}miner.errors"
  acl --allow-principal "User:$m" --operation Read --operation Describe --topic "${NS}sot." --resource-pattern-type prefixed
  acl --allow-principal "User:$m" --operation Read --group "${NS}miner-$m"
  acl --allow-principal "User:$m" --operation IdempotentWrite --cluster
done
# validator: reads scores.*, sot.*, the registry and control; the only writer of ensemble.*, results and its inbox
acl --allow-principal User:validator --operation Read --operation Describe --topic "${NS}scores." --resource-pattern-type prefixed
acl --allow-principal User:validator --operation Read --operation Describe --topic "${NS}sot." --resource-pattern-type prefixed
for t in miners.registry validator.control; do acl --allow-principal User:validator --operation Read --operation Describe --topic "$NS$t"; done
for t in ensemble. validator. dlq. riskstream-validator; do
  acl --allow-principal User:validator --operation All --topic "$NS$t" --resource-pattern-type prefixed
done
acl --allow-principal User:validator --operation All --group "${NS}" --resource-pattern-type prefixed
acl --allow-principal User:validator --operation IdempotentWrite --operation Create --cluster
# gateway (sink): reads the validator's outputs and inbox only
for t in ensemble. validator.results validator.inbox; do
  acl --allow-principal User:gateway --operation Read --operation Describe --topic "$NS$t" --resource-pattern-type prefixed
done
acl --allow-principal User:gateway --operation Read --group "${NS}riskstream-warehouse"
# operators: write validator.control (the validator still checks their signature)
for o in $OPERATORS; do
  acl --allow-principal "User:$o" --operation Write --operation Describe --topic "${NS}validator.control"
  acl --allow-principal "User:$o" --operation Write --operation Describe --topic "${NS}sot.batches"
done
echo "topics, users and ACLs are in place"
