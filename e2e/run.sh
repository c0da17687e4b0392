#!/usr/bin/env bash
# End-to-end scenarios of the control plane on a real cluster (kind or k3d); see README.md.
# Usage: MIROIR_IMAGE=miroir:dev e2e/run.sh        (the image must already be loadable)
set -euo pipefail

cd "$(dirname "$0")/.."
NS=miroir-e2e
IMAGE="${MIROIR_IMAGE:-miroir:dev}"
CLUSTER_TOOL="${CLUSTER_TOOL:-kind}"       # kind | k3d | none (use the current context)
K="kubectl -n $NS"

step() { printf '\n=== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

case "$CLUSTER_TOOL" in
  kind) kind get clusters | grep -qx miroir-e2e || kind create cluster --name miroir-e2e
        kind load docker-image "$IMAGE" --name miroir-e2e ;;
  k3d)  k3d cluster list miroir-e2e >/dev/null 2>&1 || k3d cluster create miroir-e2e
        k3d image import "$IMAGE" -c miroir-e2e ;;
  none) ;;
  *) fail "CLUSTER_TOOL must be kind, k3d or none" ;;
esac

step "CRDs: crds/ equals what the binary prints, and the API server accepts them"
if [ -x target/debug/miroir ]; then
  diff <(target/debug/miroir crd) <(for f in crds/*.yaml; do echo '---'; cat "$f"; done) || fail "crds/ is stale"
fi
kubectl apply -f crds/
kubectl wait --for=condition=Established crd --all --timeout=60s

step "Workloads: Meilisearch nodes, Redis, two operator pods"
kubectl apply -f e2e/manifests/00-namespace.yaml -f e2e/manifests/10-meilisearch.yaml -f e2e/manifests/20-redis.yaml
sed "s|MIROIR_IMAGE|$IMAGE|" e2e/manifests/30-operator.yaml | kubectl apply -f -
$K rollout status statefulset/meili --timeout=180s
$K rollout status deployment/redis --timeout=120s

step "1. apply a MiroirCluster: Ready with the right observedGeneration"
kubectl apply -f e2e/manifests/40-cluster.yaml
$K rollout status deployment/miroir --timeout=180s
$K wait --for=condition=Ready miroircluster/search --timeout=120s
gen=$($K get miroircluster search -o jsonpath='{.metadata.generation}')
obs=$($K get miroircluster search -o jsonpath='{.status.observedGeneration}')
[ "$gen" = "$obs" ] || fail "observedGeneration $obs != generation $gen"
$K get miroircluster search

step "2. edit nodes: the running proxies route to the new topology"
$K patch miroircluster search --type merge -p '{"spec":{"nodes":[
  {"id":"meili-0","address":"http://meili-0.meili.miroir-e2e.svc:7700"},
  {"id":"meili-1","address":"http://meili-1.meili.miroir-e2e.svc:7700"},
  {"id":"meili-2","address":"http://meili-2.meili.miroir-e2e.svc:7700"}]}}'
$K wait --for=jsonpath='{.status.observedGeneration}'=2 miroircluster/search --timeout=60s
[ "$($K get miroircluster search -o jsonpath='{.status.nodesReady}')" = "3/3" ] || fail "status does not list 3 healthy nodes"
$K get miroircluster search -o jsonpath='{.status.conditions[?(@.type=="Progressing")].reason}' | grep -q RebalanceRequired \
  || fail "moving shards must set Progressing=RebalanceRequired"

step "3. invalid spec: refused at admission by CEL"
if kubectl apply -f e2e/manifests/bad-rf.yaml 2>/tmp/miroir-e2e-bad.txt; then fail "RF > nodes was admitted"; fi
grep -q "replicationFactor must not exceed" /tmp/miroir-e2e-bad.txt || fail "unexpected admission message: $(cat /tmp/miroir-e2e-bad.txt)"
if $K patch miroircluster search --type merge -p '{"spec":{"shards":16}}' 2>/dev/null; then fail "shards changed"; fi

step "4. mirrored Alias is Ready"
$K wait --for=condition=Ready alias/movies --timeout=60s

step "5. two operators: one lease holder; failover when it goes away"
# The lease lives in the task store: Redis key <prefix>lease:<cluster>/operator-leader = holder pod.
holder() { $K exec deploy/redis -- redis-cli GET "e2e:lease:search/operator-leader" | tr -d '\r'; }
leader=$(holder)
[ -n "$leader" ] || fail "nobody holds the lease"
$K get pod "$leader" >/dev/null || fail "lease holder $leader is not a pod of the Deployment"
$K delete pod "$leader" --wait=false
now=""
for _ in $(seq 1 30); do
  now=$(holder)
  [ -n "$now" ] && [ "$now" != "$leader" ] && break
  sleep 2
done
[ -n "$now" ] && [ "$now" != "$leader" ] || fail "the lease did not move away from $leader"
echo "lease moved from $leader to $now"
# The new holder writes status: a spec change is observed.
$K patch miroircluster search --type merge -p '{"spec":{"health":{"intervalMs":1500}}}'
$K wait --for=jsonpath='{.status.observedGeneration}'=3 miroircluster/search --timeout=60s

step "6. delete: the finalizer clears the task store, then the object goes"
kubectl delete miroircluster search -n $NS --timeout=60s
$K logs -l app=miroir --tail=200 | grep -q "cluster state removed from the task store" || fail "finalizer did not run"

step "all scenarios passed"
