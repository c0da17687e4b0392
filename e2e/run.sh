#!/usr/bin/env bash
# End-to-end scenarios of the control plane on a real cluster (kind or k3d); see README.md.
# Needs a cluster, Docker, kubectl and curl: not run in CI, and not run where this was written.
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

# Through a port-forward to the Miroir Service, with the client master key.
MASTER_KEY=e2e-client-master-key-0123456789
kubectl -n $NS port-forward svc/miroir 17700:7700 >/tmp/miroir-e2e-pf.log 2>&1 &
PF=$!
trap 'kill $PF 2>/dev/null || true' EXIT
sleep 3
api() { curl -fsS -H "Authorization: Bearer $MASTER_KEY" -H 'Content-Type: application/json' "$@"; }
wait_task() {  # uid
  for _ in $(seq 1 300); do
    st=$(api "http://127.0.0.1:17700/tasks/$1" | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p')
    case "$st" in succeeded) return 0 ;; failed|canceled) fail "task $1 $st" ;; esac
    sleep 1
  done
  fail "task $1 did not end"
}
task_uid() { sed -n 's/.*"taskUid":\([0-9]*\).*/\1/p'; }
DOCS=2000
count_docs() {  # every document through Miroir: search total and a fetch of every id
  total=$(api -X POST http://127.0.0.1:17700/indexes/movies/search -d '{"q":"","page":1,"hitsPerPage":1}' \
    | sed -n 's/.*"totalHits":\([0-9]*\).*/\1/p')
  [ "$total" = "$DOCS" ] || fail "search counts $total documents, expected $DOCS"
  ids=$(seq 0 $((DOCS - 1)) | sed 's/.*/"&"/' | paste -sd, -)
  fetched=$(api -X POST http://127.0.0.1:17700/indexes/movies/documents/fetch -d "{\"ids\":[$ids],\"limit\":$((DOCS + 10))}" \
    | grep -o '"id":"[0-9]*"' | sort -u | wc -l)
  [ "$fetched" -eq "$DOCS" ] || fail "fetched $fetched of $DOCS documents by id"
}
# Waits until the controller saw the current generation, then until no migration runs.
wait_rebalanced() {
  gen=$($K get miroircluster search -o jsonpath='{.metadata.generation}')
  $K wait --for=jsonpath='{.status.observedGeneration}'="$gen" miroircluster/search --timeout=60s
  $K wait --for=condition=Progressing=false miroircluster/search --timeout=30m
  moved=$($K get miroircluster search -o jsonpath='{.status.rebalance.shardsMoved}')
  total=$($K get miroircluster search -o jsonpath='{.status.rebalance.shardsTotal}')
  [ "$moved" = "$total" ] && [ "$total" -gt 0 ] || fail "status.rebalance: $moved/$total shards moved"
  id=$($K get miroircluster search -o jsonpath='{.status.rebalance.migration}')
  for reason in RebalanceStarted RebalanceFinished; do
    $K get events --field-selector "reason=$reason" -o jsonpath='{.items[*].message}' | grep -q "$id" \
      || fail "no $reason event for migration $id"
  done
  echo "migration $id: $moved/$total shards moved"
}

step "2. add a node: the data moves, then routing switches; Progressing follows it"
uid=$(api -X POST http://127.0.0.1:17700/indexes -d '{"uid":"movies","primaryKey":"id"}' | task_uid); wait_task "$uid"
docs=$(seq 0 $((DOCS - 1)) | sed 's/.*/{"id":"&","title":"movie &"}/' | paste -sd, -)
uid=$(api -X POST http://127.0.0.1:17700/indexes/movies/documents -d "[$docs]" | task_uid); wait_task "$uid"
count_docs
$K patch miroircluster search --type merge -p '{"spec":{"nodes":[
  {"id":"meili-0","address":"http://meili-0.meili.miroir-e2e.svc:7700"},
  {"id":"meili-1","address":"http://meili-1.meili.miroir-e2e.svc:7700"},
  {"id":"meili-2","address":"http://meili-2.meili.miroir-e2e.svc:7700"}]}}'
wait_rebalanced
[ "$($K get miroircluster search -o jsonpath='{.status.nodesReady}')" = "3/3" ] || fail "status does not list 3 healthy nodes"
count_docs

step "2b. remove a node: its shards move away first"
$K patch miroircluster search --type merge -p '{"spec":{"nodes":[
  {"id":"meili-0","address":"http://meili-0.meili.miroir-e2e.svc:7700"},
  {"id":"meili-2","address":"http://meili-2.meili.miroir-e2e.svc:7700"}]}}'
wait_rebalanced
[ "$($K get miroircluster search -o jsonpath='{.status.nodesReady}')" = "2/2" ] || fail "status does not list 2 healthy nodes"
count_docs
kubectl -n $NS port-forward pod/meili-1 17701:7700 >/tmp/miroir-e2e-pf1.log 2>&1 &
PF1=$!
sleep 3
left=$(curl -fsS -H "Authorization: Bearer e2e-node-master-key-0123456789" http://127.0.0.1:17701/indexes/movies/stats \
  | sed -n 's/.*"numberOfDocuments":\([0-9]*\).*/\1/p')
kill $PF1 2>/dev/null || true
[ "$left" = "0" ] || fail "meili-1 still holds $left documents after leaving"

step "3. invalid spec: refused at admission by CEL"
if kubectl apply -f e2e/manifests/bad-rf.yaml 2>/tmp/miroir-e2e-bad.txt; then fail "RF > nodes was admitted"; fi
grep -q "replicationFactor must not exceed" /tmp/miroir-e2e-bad.txt || fail "unexpected admission message: $(cat /tmp/miroir-e2e-bad.txt)"
if $K patch miroircluster search --type merge -p '{"spec":{"shards":16}}' 2>/dev/null; then fail "shards changed"; fi

step "4. Alias is mirrored, and honest: Ready=False/NotImplemented (the proxy does not resolve aliases yet)"
$K wait --for=condition=Mirrored alias/movies --timeout=60s
[ "$($K get alias movies -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}')" = "NotImplemented" ] || fail "Alias claims Ready without behaviour"

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
gen=$($K get miroircluster search -o jsonpath='{.metadata.generation}')
$K wait --for=jsonpath='{.status.observedGeneration}'="$gen" miroircluster/search --timeout=60s

step "6. delete: the finalizer clears the task store, then the object goes"
kubectl delete miroircluster search -n $NS --timeout=60s
$K logs -l app=miroir --tail=200 | grep -q "cluster state removed from the task store" || fail "finalizer did not run"

step "all scenarios passed"
