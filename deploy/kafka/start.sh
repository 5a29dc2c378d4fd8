#!/bin/bash
# Format the KRaft log with the admin's SCRAM credential (first start only), then run the broker.
set -euo pipefail
ADMIN_PASSWORD=$(cat /run/secrets/kafka_admin_password)
sed "s/__ADMIN_PASSWORD__/${ADMIN_PASSWORD}/" /etc/riskstream/server.properties > /tmp/server.properties
chmod 600 /tmp/server.properties
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted --cluster-id "${CLUSTER_ID}" --config /tmp/server.properties \
  --add-scram "SCRAM-SHA-512=[name=admin,password=${ADMIN_PASSWORD}]"
exec /opt/kafka/bin/kafka-server-start.sh /tmp/server.properties
