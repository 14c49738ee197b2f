#!/usr/bin/env bash
# Replays the "Quick Start Guide" of the Scaleway Functions v1alpha2 API documentation (the
# `info.description` of ../shared/reference/scaleway-functions-v1alpha2.openapi.yaml) against
# nuage. The curl lines are the guide's own; only the host (https://api.scaleway.com becomes
# $API_HOST), the token, the organization and the ids differ. Where the guide says "copy the
# `id` field", jq (which the guide's prerequisites install) copies it. Between the guide's steps,
# checks (marked "check:") say what the answers must be.
#
# Environment: API_HOST (http://host:port), TOKEN, ORGANIZATION_ID. Runs in the current folder.
set -euo pipefail

export REGION="fr-par"
BASE="$API_HOST/functions/v1alpha2/regions/$REGION"

check() {
  if ! eval "$1"; then
    echo "check failed: $1"
    [ -n "${2:-}" ] && echo "$2"
    exit 1
  fi
}
# Answers of the API are saved by each step in $OUT, so the checks can read them.
step() { echo "-- $1"; }
# "The process may take a little bit of time": the guide's GET of function $1, repeated until
# it is ready (an error status fails at once); leaves the function in $OUT.
wait_ready() {
  for _ in $(seq 1 240); do
    OUT=$(curl -X GET -H "X-Auth-Token: $TOKEN" "$API_HOST/functions/v1alpha2/regions/$REGION/functions/$1")
    [ "$(jq -r .status <<<"$OUT")" = ready ] && return
    check '[ "$(jq -r .status <<<"$OUT")" != error ]' "$OUT"
    sleep 0.5
  done
  check '[ "$(jq -r .status <<<"$OUT")" = ready ]' "$OUT"
}
# The guide's curl lines print progress meters; a .curlrc here quiets them without changing a line.
export CURL_HOME="$PWD"
printf -- '--silent\n--show-error\n' >.curlrc

step "Create a Namespace"
OUT=$(curl -X POST "$API_HOST/functions/v1alpha2/regions/$REGION/namespaces" -H "accept: application/json" -H "X-Auth-Token: $TOKEN" -H "Content-Type: application/json" \
-d "{\"name\": \"your-namespace-name\", \"organization_id\": \"$ORGANIZATION_ID\", \"environment_variables\": {\"YOUR_VARIABLE\": \"content\"}}")
check '[ "$(jq -r .name <<<"$OUT")" = your-namespace-name ]' "$OUT"
check '[ "$(jq -r .organization_id <<<"$OUT")" = "$ORGANIZATION_ID" ]' "$OUT"
check '[ "$(jq -c .environment_variables <<<"$OUT")" = "{\"YOUR_VARIABLE\":\"content\"}" ]' "$OUT"
export NAMESPACE_ID="$(jq -r .id <<<"$OUT")"

step "Write a function handler"
touch handler.js
cat >handler.js <<'JS'
// handler.js
module.exports.myHandler = async (event, context, callback) => {
  const response = {
    body: JSON.stringify({message: "Hello, World"}),
    statusCode: 200,
    headers: {
      MY_HEADER: "its content",
    },
  }
  return response
}
JS

step "Create a function"
# The guide's line continuations (`$TOKEN"\` then `"https://...`) have no space before the
# backslash, which glues the header, the URL and `-d` into one word in any shell; a space is added.
OUT=$(curl -X POST \
-H "X-Auth-Token: $TOKEN"\
 "$API_HOST/functions/v1alpha2/regions/$REGION/functions"\
 -d "{\"name\": \"function-name\", \"namespace_id\": \"$NAMESPACE_ID\", \"memory_limit\": 128, \"min_scale\": 0, \"max_scale\": 20, \"runtime\": \"node10\", \"handler\": \"handler.myHandler\"}")
check '[ "$(jq -r "[.name, .runtime, .handler, .memory_limit, .min_scale, .max_scale, .privacy] | join(\" \")" <<<"$OUT")" = "function-name node10 handler.myHandler 128 0 20 public" ]' "$OUT"
export FUNCTION_ID="$(jq -r .id <<<"$OUT")"

step "Archive your code"
export FUNCTION_ARCHIVE="function-$FUNCTION_ID.zip"
zip $FUNCTION_ARCHIVE handler.js

step "Get a presigned URL"
export ARCHIVE_SIZE=$(stat -c %s "$FUNCTION_ARCHIVE")
OUT=$(curl -X GET -H "X-Auth-Token: ${TOKEN}" "$API_HOST/functions/v1alpha2/regions/$REGION/functions/$FUNCTION_ID/upload-url?content_length=$ARCHIVE_SIZE")
check '[ "$(jq -r ".headers[\"content-length\"][0]" <<<"$OUT")" = "$ARCHIVE_SIZE" ]' "$OUT"
export FUNCTION_ARCHIVE_URL=$(echo -n "$(jq -r .url <<<"$OUT")")

step "Upload your code to the presigned URL"
curl -H "Content-Type: application/octet-stream" --upload-file $FUNCTION_ARCHIVE -H "Content-Length: $ARCHIVE_SIZE" $FUNCTION_ARCHIVE_URL --fail-with-body

step "Deploy a function"
OUT=$(curl -X POST -H "X-Auth-Token: $TOKEN" "$API_HOST/functions/v1alpha2/regions/$REGION/functions/$FUNCTION_ID/deploy" -d "{}")
check '[ "$(jq -r .id <<<"$OUT")" = "$FUNCTION_ID" ]' "$OUT"

step "Trigger your function (its endpoint once it is ready)"
wait_ready "$FUNCTION_ID"
export FUNCTION_ENDPOINT="$(jq -r .endpoint <<<"$OUT")"

OUT=$(curl -X GET "$FUNCTION_ENDPOINT" -D headers.txt)
check '[ "$OUT" = "{\"message\":\"Hello, World\"}" ]' "$OUT"
check 'grep -qi "^my_header: its content" headers.txt' "$(cat headers.txt)"

step "Get your functions logs"
OUT=$(curl -X GET -H "X-Auth-Token: $TOKEN" "$API_HOST/functions/v1alpha2/regions/$REGION/logs?application_id=$FUNCTION_ID")
check '[ "$(jq -r "(.logs | type) + \" \" + (.total_count | type)" <<<"$OUT")" = "array number" ]' "$OUT"
check '[ "$(jq -r ".logs | length" <<<"$OUT")" = "$(jq -r .total_count <<<"$OUT")" ]' "$OUT"
# The handler prints nothing; its build did, and that is in the function's logs.
WANT='the handler `handler.myHandler`'
check 'jq -e --arg want "$WANT" "any(.logs[]; .message | contains(\$want))" <<<"$OUT" >/dev/null' "$OUT"

step "Create a CRON Trigger for your Function"
OUT=$(curl -X POST -H "X-Auth-Token: $TOKEN" "$API_HOST/functions/v1alpha2/regions/$REGION/crons" -d "{\"application_id\": \"$FUNCTION_ID\", \"schedule\": \"0 13 * * *\", \"args\": {\"key\": \"value\"}}")
check '[ "$(jq -c "[.application_id, .schedule, .args]" <<<"$OUT")" = "[\"$FUNCTION_ID\",\"0 13 * * *\",{\"key\":\"value\"}]" ]' "$OUT"
OUT=$(curl -s -H "X-Auth-Token: $TOKEN" "$API_HOST/functions/v1alpha2/regions/$REGION/crons?application_id=$FUNCTION_ID")
check '[ "$(jq -r ".crons | length" <<<"$OUT")" = 1 ]' "$OUT"

step "Authentication: a private function, a token, a private call"
# "Create a function with privacy private": the guide's create call with the privacy parameter.
OUT=$(curl -X POST \
-H "X-Auth-Token: $TOKEN"\
 "$API_HOST/functions/v1alpha2/regions/$REGION/functions"\
 -d "{\"name\": \"private-function\", \"namespace_id\": \"$NAMESPACE_ID\", \"memory_limit\": 128, \"min_scale\": 0, \"max_scale\": 20, \"runtime\": \"node10\", \"handler\": \"handler.myHandler\", \"privacy\": \"private\"}")
check '[ "$(jq -r .privacy <<<"$OUT")" = private ]' "$OUT"
export PRIVATE_ID="$(jq -r .id <<<"$OUT")"
OUT=$(curl -X GET -H "X-Auth-Token: ${TOKEN}" "$API_HOST/functions/v1alpha2/regions/$REGION/functions/$PRIVATE_ID/upload-url?content_length=$ARCHIVE_SIZE")
PRIVATE_ARCHIVE_URL=$(echo -n "$(jq -r .url <<<"$OUT")")
curl -H "Content-Type: application/octet-stream" --upload-file $FUNCTION_ARCHIVE -H "Content-Length: $ARCHIVE_SIZE" $PRIVATE_ARCHIVE_URL --fail-with-body
OUT=$(curl -X POST -H "X-Auth-Token: $TOKEN" "$API_HOST/functions/v1alpha2/regions/$REGION/functions/$PRIVATE_ID/deploy" -d "{}")
check '[ "$(jq -r .id <<<"$OUT")" = "$PRIVATE_ID" ]' "$OUT"
wait_ready "$PRIVATE_ID"
PRIVATE_ENDPOINT="$(jq -r .endpoint <<<"$OUT")"

# The guide's token calls: for the namespace, then with an expiration date (the guide's example
# date, 2020-01-02, has passed; a date to come stands in for it), then for the function.
OUT=$(curl -s -H "X-Auth-Token: $TOKEN" "$API_HOST/functions/v1alpha2/regions/$REGION/jwt/issue?namespace_id=$NAMESPACE_ID")
NAMESPACE_TOKEN="$(jq -r .token <<<"$OUT")"
check '[ -n "$NAMESPACE_TOKEN" ] && [ "$NAMESPACE_TOKEN" != null ]' "$OUT"
EXPIRATION="$(date -u -d '+1 day' +%Y-%m-%dT00:00:00Z)"
OUT=$(curl -s -H "X-Auth-Token: $TOKEN" "$API_HOST/functions/v1alpha2/regions/$REGION/jwt/issue?expiration_date=$EXPIRATION&namespace_id=$NAMESPACE_ID")
DATED_TOKEN="$(jq -r .token <<<"$OUT")"
check '[ -n "$DATED_TOKEN" ] && [ "$DATED_TOKEN" != null ]' "$OUT"
OUT=$(curl -s -H "X-Auth-Token: $TOKEN" "$API_HOST/functions/v1alpha2/regions/$REGION/jwt/issue?function_id=$PRIVATE_ID")
FUNCTION_TOKEN="$(jq -r .token <<<"$OUT")"
check '[ -n "$FUNCTION_TOKEN" ] && [ "$FUNCTION_TOKEN" != null ]' "$OUT"

for GENERATED_TOKEN in "$NAMESPACE_TOKEN" "$DATED_TOKEN" "$FUNCTION_TOKEN"; do
  OUT=$(curl -H "SCW_FUNCTIONS_TOKEN: $GENERATED_TOKEN" $PRIVATE_ENDPOINT)
  check '[ "$OUT" = "{\"message\":\"Hello, World\"}" ]' "$OUT"
done
# "If a call is done without SCW_FUNCTIONS_TOKEN header, the call is rejected (Status Code 404)"
STATUS=$(curl -s -o refused.txt -w '%{http_code}' $PRIVATE_ENDPOINT)
check '[ "$STATUS" = 404 ] && ! grep -q "Hello, World" refused.txt' "$STATUS $(cat refused.txt)"

step "Remove a Scaleway Functions namespace"
curl -X DELETE -H "X-Auth-Token: ${TOKEN}" "$API_HOST/functions/v1alpha2/regions/$REGION/namespaces/$NAMESPACE_ID" >/dev/null
for _ in $(seq 1 240); do
  STATUS=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $TOKEN" "$API_HOST/functions/v1alpha2/regions/$REGION/namespaces/$NAMESPACE_ID")
  [ "$STATUS" = 404 ] && break
  sleep 0.5
done
check '[ "$STATUS" = 404 ]' "the namespace is still there"
STATUS=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $TOKEN" "$API_HOST/functions/v1alpha2/regions/$REGION/functions/$FUNCTION_ID")
check '[ "$STATUS" = 404 ]' "the function outlived its namespace"
STATUS=$(curl -s -o /dev/null -w '%{http_code}' "$FUNCTION_ENDPOINT")
check '[ "$STATUS" = 404 ]' "the endpoint of a removed function answers $STATUS"
echo "quick start replayed"
