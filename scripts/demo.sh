#!/usr/bin/env bash
# The main job on the embedded default (SQLite, local files): register a real model, enrol a
# partner, sign + countersign + apply a charter, and ask the policy engine twice.
set -euo pipefail
cd "$(dirname "$0")/.."
MP=${MODELPACT:-.venv/bin/modelpact}
PY=${PYTHON:-.venv/bin/python}
WORK=$(mktemp -d -t modelpact-demo-XXXXXX)
step() { printf '\n== %s\n' "$*"; }

step "Owner trains a model (logistic regression, scikit-learn's breast-cancer data) -> ONNX"
$PY examples/breast_cancer.py --out "$WORK/cancer-screen.onnx"

step "Owner creates a workspace in $WORK/owner"
$MP init "$WORK/owner" --name northwind
export MODELPACT_WORKSPACE="$WORK/owner"

step "Owner registers the model: checked, signed (OpenSSF model-signing), encrypted at rest"
$MP model add cancer-screen "$WORK/cancer-screen.onnx" --version 1.0.0 \
  --card examples/cancer-screen.card.yaml
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

step "Everything above is in the tamper-evident audit log; an auditor checks it offline"
$MP audit export --out "$WORK/audit.json"
$MP audit verify "$WORK/audit.json" --public-key "$OWNER_KEY"

printf '\nDemo workspace left in %s (delete it when done).\n' "$WORK"
