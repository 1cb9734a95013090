#!/usr/bin/env bash
# The main job on the embedded default (SQLite, local files, loopback): register two real models,
# enrol a partner, sign + countersign + apply a charter, serve the gateway over TLS, and let the
# partner score held-out rows through the SDK, be refused once and throttled once, and verify
# every receipt against the signed log.
set -euo pipefail
cd "$(dirname "$0")/.."
MP=${MODELPACT:-.venv/bin/modelpact}
PY=${PYTHON:-.venv/bin/python}
WORK=$(mktemp -d -t modelpact-demo-XXXXXX)
step() { printf '\n== %s\n' "$*"; }

step "Owner trains models on scikit-learn's breast-cancer and digits data -> ONNX (held-out rows kept)"
$PY examples/breast_cancer.py --out "$WORK/cancer-screen.onnx" --holdout "$WORK/holdout.csv" \
  --reference "$WORK/train.csv"
$PY examples/breast_cancer.py --out "$WORK/cancer-screen-mlp.onnx" --kind mlp
$PY examples/digits.py --out "$WORK/digits.onnx" --holdout "$WORK/digits-holdout.csv" \
  --reference "$WORK/digits-train.csv"

step "Owner creates a workspace in $WORK/owner"
$MP init "$WORK/owner" --name northwind
export MODELPACT_WORKSPACE="$WORK/owner"

step "Owner registers the models: checked, signed (OpenSSF model-signing), encrypted at rest;"
echo "   the training rows' summary goes with each version, for the extraction monitor"
$MP model add cancer-screen "$WORK/cancer-screen.onnx" --version 1.0.0 \
  --card examples/cancer-screen.card.yaml --reference "$WORK/train.csv"
$MP model add cancer-screen-mlp "$WORK/cancer-screen-mlp.onnx" --version 1.0.0
$MP model add digits "$WORK/digits.onnx" --version 1.0.0 --reference "$WORK/digits-train.csv"
$MP model verify cancer-screen

step "Partner acme makes its key pair (private key stays with acme); owner enrols the public key"
PARTNER_KEY=$($MP partner keygen --out "$WORK/acme.key")
$MP partner add acme --public-key "$PARTNER_KEY" --name "ACME Analytics"

step "Owner writes the charter (valid from today for 180 days) and lints it"
OWNER_KEY=$(cat "$WORK/owner/keys/owner-ed25519.pub")
FROM=$(date -u +%Y-%m-%dT00:00:00Z)
UNTIL=$(date -u -d '+180 days' +%Y-%m-%dT00:00:00Z)
sed -e "s|@OWNER_KEY@|$OWNER_KEY|" -e "s|@PARTNER_KEY@|$PARTNER_KEY|" \
    -e "s|@FROM@|$FROM|" -e "s|@UNTIL@|$UNTIL|" examples/charter.yaml > "$WORK/charter.yaml"
$MP charter check "$WORK/charter.yaml"

step "Owner signs; partner countersigns offline with its own key; owner applies"
$MP charter sign "$WORK/charter.yaml" --out "$WORK/charter.signed.json"
$MP charter show --file "$WORK/charter.signed.json"
$MP charter countersign "$WORK/charter.signed.json" --key "$WORK/acme.key"
$MP charter apply "$WORK/charter.signed.json"
$MP charter list

step "Policy decisions"
$MP policy decide --partner acme --charter northwind-acme-screening --purpose diagnostic-research \
  --model cancer-screen --version 1.0.0 --action predict
$MP policy decide --partner acme --charter northwind-acme-screening --purpose marketing \
  --model cancer-screen --version 1.0.0 --action predict

step "Owner serves the gateway (TLS, certificate from the workspace's CA) on 127.0.0.1"
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$MP serve --port "$PORT" &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do  # at most 20 s
  curl -sf --cacert "$WORK/owner/tls/ca.pem" "https://127.0.0.1:$PORT/readyz" >/dev/null && break
  kill -0 "$SERVER" 2>/dev/null || { echo "the gateway did not start" >&2; exit 1; }
  sleep 0.2
done

step "Partner acme, with the SDK: session, scoring, a refused purpose, a 429, receipts verified"
$PY examples/partner_demo.py --gateway "https://127.0.0.1:$PORT" --ca "$WORK/owner/tls/ca.pem" \
  --key "$WORK/acme.key" --charter "$WORK/charter.signed.json" --holdout "$WORK/holdout.csv" \
  --witness "$WORK/acme-witness.note"

step "Owner signs in to the dashboard with a one-time link (signed by the owner key) and reads acme's page"
LINK=$($MP dashboard link --url "https://127.0.0.1:$PORT")
LINK=${LINK%%$'\n'*}  # the first line (no `| head`: with pipefail its SIGPIPE would stop the demo)
JAR="$WORK/dashboard.cookies"
curl -sf --cacert "$WORK/owner/tls/ca.pem" -c "$JAR" -o /dev/null "$LINK"
PAGE=$(curl -sf --cacert "$WORK/owner/tls/ca.pem" -b "$JAR" "https://127.0.0.1:$PORT/dashboard/partners/acme")
for what in requests rows denied limited; do
  printf '   acme %s: %s\n' "$what" "$(grep -o "id=\"total-$what\">[0-9]*" <<<"$PAGE" | grep -o '[0-9]*$')"
done

step "Owner stops the gateway"
kill -INT "$SERVER"
wait "$SERVER" || true
trap - EXIT

step "The extraction monitor raised nothing on acme's natural traffic"
$MP monitor list

step "Owner red-teams the models as acme's charter lets a partner see them (scratch gateway)"
$MP redteam --charter northwind-acme-screening --model cancer-screen --data "$WORK/holdout.csv" \
  --budget 300 --out "$WORK/redteam-cancer-screen"
$MP redteam --charter northwind-acme-screening --model digits --data "$WORK/digits-holdout.csv" \
  --attack adaptive --budget 600 --out "$WORK/redteam-digits"

step "Owner rotates the key-encryption key: every data key re-wrapped, the models still verify"
$MP keys rotate-kek
$MP model verify cancer-screen

step "The partnership ends: owner terminates the charter (sessions revoked, acme's data key destroyed)"
$MP charter terminate northwind-acme-screening --reason "pilot complete" --out "$WORK/exit-report.json"

step "Partner acme verifies the signed exit report offline, with the owner's public key"
$MP charter verify-exit "$WORK/exit-report.json" --owner-key "$OWNER_KEY"

step "Everything above is in the tamper-evident audit log; an auditor checks it offline"
$MP audit export --out "$WORK/audit.json"
$MP audit verify "$WORK/audit.json" --public-key "$OWNER_KEY"

printf '\nDemo workspace left in %s (delete it when done).\n' "$WORK"
printf 'To browse its dashboard: %s --workspace %s serve --port 8443 &\n' "$MP" "$WORK/owner"
printf '  then open the link that %s --workspace %s dashboard link prints\n' "$MP" "$WORK/owner"
printf '  (the browser must trust %s, or accept the warning once).\n' "$WORK/owner/tls/ca.pem"
