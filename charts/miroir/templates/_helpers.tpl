{{/* Chart name, overridable. */}}
{{- define "miroir.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: the release name, prefixed to the chart name unless
it already contains it (`helm install miroir charts/miroir` gives `miroir`).
*/}}
{{- define "miroir.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "miroir.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "miroir.labels" -}}
helm.sh/chart: {{ include "miroir.chart" . }}
{{ include "miroir.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: miroir
{{- end }}

{{/* Labels the Deployment and Service select pods by (immutable once installed). */}}
{{- define "miroir.selectorLabels" -}}
app.kubernetes.io/name: {{ include "miroir.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Service account the pods run as. */}}
{{- define "miroir.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "miroir.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The container image. */}}
{{- define "miroir.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Namespace of the MiroirCluster (and of the Role that reads it). */}}
{{- define "miroir.clusterNamespace" -}}
{{- default .Release.Namespace .Values.cluster.namespace }}
{{- end }}

{{/*
The task store rules: SQLite is one process's file (two pods would be two leaders handing
out the same task uids), so more than one pod needs Redis, whatever `persistence` says; a
rendered MiroirCluster gets its store from `taskStore`.
*/}}
{{- define "miroir.checkTaskStore" -}}
{{- if not (has .Values.taskStore (list "sqlite" "redis")) }}
{{- fail (printf "taskStore must be sqlite or redis, not %v" .Values.taskStore) }}
{{- end }}
{{- if and (eq .Values.taskStore "sqlite") (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "replicaCount=%v with the SQLite task store: SQLite allows one pod (two would hand out the same task uids). Keep replicaCount=1, or set taskStore=redis with a MiroirCluster whose spec.taskStore.redis names your Redis" (int .Values.replicaCount)) }}
{{- end }}
{{- if and .Values.persistence.enabled (gt (int .Values.replicaCount) 1) }}
{{- fail "persistence.enabled mounts one ReadWriteOnce volume for the SQLite file: with several pods (taskStore=redis) set persistence.enabled=false" }}
{{- end }}
{{- if and .Values.miroirCluster.enabled (hasKey .Values.miroirCluster.spec "taskStore") }}
{{- fail "miroirCluster.spec.taskStore is set by the chart: use the values taskStore (sqlite or redis) and redis.urlSecret / redis.prefix instead" }}
{{- end }}
{{- end }}
