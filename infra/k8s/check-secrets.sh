#!/bin/sh
# Refuse to start a pod while one of its variables still holds the placeholder of infra/k8s/config.yaml.
# The first init container of every ragtune pod runs it with the pod's own environment (the Secrets it
# reads), from the ConfigMap ragtune-check-secrets that kustomization.yaml makes of this file; applying
# the shipped Secrets unchanged leaves every pod in Init:Error with this message in its log.
#   sh check-secrets.sh        exit 0: none left; exit 1: the variables named
set -eu
placeholder="${RAGTUNE_PLACEHOLDER:-CHANGE-ME}"
bad=$(env | sed -n "s/^\([A-Za-z_][A-Za-z0-9_]*\)=.*${placeholder}.*\$/\1/p" | sort | tr '\n' ' ')
if [ -n "$bad" ]; then
  echo "refusing to start: ${bad}still hold the placeholder ${placeholder}. Fill the Secrets of infra/k8s/config.yaml" \
       "from your vault first, e.g. kubectl -n ragtune create secret generic ragtune-secrets --from-literal=KEY=VALUE ..." >&2
  exit 1
fi
echo "check-secrets: no placeholder left"
