#!/usr/bin/env bash
# Sends quota.request_change with nothing but redis-cli: the exact message envelope
# Celery's Redis transport (kombu) expects, for producers in any language.
#
#   REDIS_CLI_ARGS="-h localhost -p 6379 -n 0" ./send_request.sh SERVICE_MAIL ACCOUNT FROM TO AMOUNT [ORDER_ID]
#   (the embedded default: REDIS_CLI_ARGS="-s var/redis.sock")
#
# The queue is a Redis list named like the queue; the worker pops from its
# right end, so a producer LPUSHes one JSON document per message:
#   body      base64 of the JSON array [[], PAYLOAD, {}]: no positional arguments,
#             the contract's payload as keyword arguments, no callbacks
#   headers   task = the message name, id = a fresh UUID (Celery's task id)
#   properties.delivery_tag  a fresh UUID; kombu tracks the unacknowledged message by it
set -euo pipefail
[[ $# -ge 5 ]] || { sed -n '5,6p' "$0"; exit 2; }
service_mail=$1 account=$2 from=$3 to=$4 amount=$5
uuid() { cat /proc/sys/kernel/random/uuid 2>/dev/null || uuidgen | tr 'A-Z' 'a-z'; }
order=${6:-ord-$(uuid)}
task_id=$(uuid)
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)

payload=$(printf '{"schema_version":1,"request_id":"req-%s","order_id":"%s","account_id":"%s","service_mail_id":"%s","expected_address_limit":%d,"new_address_limit":%d,"amount_due":%d,"currency":"CHF","requested_at":"%s"}' \
  "$order" "$order" "$account" "$service_mail" "$from" "$to" "$amount" "$now")
body=$(printf '[[],%s,{}]' "$payload" | base64 | tr -d '\n')

envelope=$(cat <<JSON
{"body":"$body","content-type":"application/json","content-encoding":"utf-8",
 "headers":{"lang":"sh","task":"quota.request_change","id":"$task_id","root_id":"$task_id","retries":0},
 "properties":{"correlation_id":"$task_id","delivery_mode":2,"delivery_tag":"$(uuid)","body_encoding":"base64",
  "priority":0,"delivery_info":{"exchange":"","routing_key":"quota.orders"}}}
JSON
)
# shellcheck disable=SC2086 # REDIS_CLI_ARGS holds several words on purpose
${REDIS_CLI:-redis-cli} ${REDIS_CLI_ARGS:-} LPUSH quota.orders "$envelope" >/dev/null
printf '{"order_id":"%s","task_id":"%s"}\n' "$order" "$task_id"
