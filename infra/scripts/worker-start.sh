#!/bin/sh
# The Prefect worker's entry point (compose service prefect-worker, k8s Deployment prefect-worker):
#   1. its checkout on the persistent volume at $RAGTUNE_ROOT (cloned once from $RAGTUNE_GIT_URL; the flow
#      pulls git and DVC there before each run), so data, DVC cache, prediction cache and the pipeline lock
#      survive a restart; no .git is baked into the image;
#   2. the DVC remote from the environment: $RAGTUNE_DVC_REMOTE_URL (s3://bucket/path) becomes the default
#      remote of the checkout; endpoint and keys come from AWS_ENDPOINT_URL / AWS_ACCESS_KEY_ID / ..._SECRET_...;
#   3. a Ray node of its own, with no CPU and no GPU, joined to $RAY_ADDRESS (host:6379): every stage it runs is
#      a Ray driver on the cluster (Ray Train and Tune need one; Ray Client, ray://, is not used);
#   4. the checkout's code first on PYTHONPATH (the code Ray ships to the nodes is the checkout's, not the image's);
# then it runs the command given (prefect worker start ...).
set -eu
: "${RAGTUNE_ROOT:?set RAGTUNE_ROOT: the checkout on the worker volume, e.g. /srv/ragtune}"
if [ -n "${RAGTUNE_GIT_TOKEN:-}" ]; then  # read at each git call, never written to disk
  git config --global credential.helper '!f() { echo username=x-access-token; echo "password=$RAGTUNE_GIT_TOKEN"; }; f'
fi
if [ ! -d "$RAGTUNE_ROOT/.git" ]; then
  : "${RAGTUNE_GIT_URL:?set RAGTUNE_GIT_URL: the repository whose checkout the worker runs}"
  git clone --branch "${RAGTUNE_GIT_BRANCH:-main}" "$RAGTUNE_GIT_URL" "$RAGTUNE_ROOT"
fi
cd "$RAGTUNE_ROOT"
dvc config --local core.analytics false
if [ -n "${RAGTUNE_DVC_REMOTE_URL:-}" ]; then
  dvc remote add --local --force --default store "$RAGTUNE_DVC_REMOTE_URL" 1>&2
fi
case "${RAY_ADDRESS:-}" in
  ""|auto|local) ;;
  ray://*) echo "RAY_ADDRESS=$RAY_ADDRESS: use the head's GCS address (host:6379), not Ray Client" >&2; exit 2 ;;
  *) ray start --address="$RAY_ADDRESS" --num-cpus=0 --num-gpus=0 --disable-usage-stats 1>&2 ;;
esac
export PYTHONPATH="$RAGTUNE_ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$@"
