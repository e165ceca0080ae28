{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "sagellm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "sagellm.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sagellm.operator.fullname" -}}
{{- printf "%s-operator" (include "sagellm.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sagellm.router.fullname" -}}
{{- printf "%s-router" (include "sagellm.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels shared by every object. */}}
{{- define "sagellm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "sagellm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sagellm
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component; call with (dict "root" $ "component" "router"). */}}
{{- define "sagellm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sagellm.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels of one component's objects. */}}
{{- define "sagellm.componentLabels" -}}
{{ include "sagellm.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Common annotations as a metadata block at indent 2; include without nindent (empty when none). */}}
{{- define "sagellm.annotations" -}}
{{- with .Values.commonAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
{{- end }}
{{- end -}}

{{/* The image reference: digest wins, else tag, else the chart's appVersion. */}}
{{- define "sagellm.image" -}}
{{- if eq (lower .Values.image.tag) "latest" -}}
{{- fail "image.tag: \"latest\" is not allowed (it is neither reproducible nor rollback-safe); pin a version, or leave it empty for the chart's appVersion" -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Namespace the operator and router watch in `namespace` scope. */}}
{{- define "sagellm.watchNamespace" -}}
{{- default .Release.Namespace .Values.watch.namespace -}}
{{- end -}}

{{/* Every namespace served, one per line: the watch namespace, or the cluster-scope allow-list. */}}
{{- define "sagellm.watchNamespaces" -}}
{{- if include "sagellm.namespaced" . -}}
{{- include "sagellm.watchNamespace" . -}}
{{- else -}}
{{- if not .Values.watch.namespaces -}}
{{- fail "watch.scope=cluster needs watch.namespaces: the explicit list of namespaces to serve (pools elsewhere are ignored)" -}}
{{- end -}}
{{- join "\n" .Values.watch.namespaces -}}
{{- end -}}
{{- end -}}

{{- define "sagellm.namespaced" -}}
{{- if eq .Values.watch.scope "namespace" }}true{{ end -}}
{{- end -}}

{{- define "sagellm.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "sagellm.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sagellm.router.serviceAccountName" -}}
{{- if .Values.router.serviceAccount.create -}}
{{- default (include "sagellm.router.fullname" .) .Values.router.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.router.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Pod-level scheduling and security shared by both Deployments; call with (dict "root" $ "c" <component values>). */}}
{{- define "sagellm.podCommon" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .c.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Writable scratch space: the root filesystem is read-only. */}}
{{- define "sagellm.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- end -}}

{{/* Operator rules on namespaced resources: a ClusterRole in cluster scope, a Role in namespace scope. */}}
{{- define "sagellm.operator.namespacedRules" -}}
- apiGroups: ["sagellm.io"]
  resources: ["inferencepools", "executioninstances"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["sagellm.io"]
  resources: ["inferencepools/status", "executioninstances/status"]
  verbs: ["get", "update", "patch"]
- apiGroups: ["sagellm.io"]
  resources: ["inferencepools/finalizers", "executioninstances/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["leaderworkerset.x-k8s.io"]
  resources: ["leaderworkersets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
{{- if .Values.networkPolicy.enabled }}
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "create", "patch"]
{{- end }}
{{- if .Values.operator.peering }}
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- end }}

{{/* The router's config file (router.yaml): values' router.config plus what the chart owns. */}}
{{- define "sagellm.router.config" -}}
{{- $cfg := deepCopy .Values.router.config -}}
{{- $server := merge (dict "host" "0.0.0.0" "port" (int .Values.router.port)) (default (dict) $cfg.server) -}}
{{- $_ := set $server "port" (int .Values.router.port) -}}
{{- $_ := set $server "probe_port" (int .Values.router.probePort) -}}
{{- $_ := set $cfg "server" $server -}}
{{- if include "sagellm.namespaced" . -}}
{{- $_ := set $cfg "discovery" (dict "type" "kubernetes" "namespace" (include "sagellm.watchNamespace" .)) -}}
{{- else -}}
{{- $_ := set $cfg "discovery" (dict "type" "kubernetes" "namespaces" (splitList "\n" (include "sagellm.watchNamespaces" .))) -}}
{{- end -}}
{{- if .Values.router.apiKeys.existingSecret -}}
{{- $_ := set $cfg "auth" (dict "api_keys_file" "/etc/sagellm/secrets/api-keys") -}}
{{- end -}}
{{- if .Values.router.replicaSync.enabled -}}
{{- $port := int .Values.router.replicaSync.port -}}
{{- if or (eq $port (int .Values.router.port)) (eq $port (int .Values.router.probePort)) -}}
{{- fail (printf "router.replicaSync.port %d is also router.port or router.probePort: give it its own port" $port) -}}
{{- end -}}
{{- $peers := printf "%s-peers.%s.svc:%d" (include "sagellm.router.fullname" .) .Release.Namespace $port -}}
{{- $routing := default (dict) $cfg.routing -}}
{{- $_ := set $routing "replica_sync" (merge (dict "port" $port "peers_dns" $peers) (default (dict) $routing.replica_sync)) -}}
{{- $_ := set $cfg "routing" $routing -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The NetworkPolicyPeer of this release's pods of one component (dict "root" $ "component" name). */}}
{{- define "sagellm.componentPeer" -}}
{{- $pods := dict "matchLabels" (fromYaml (include "sagellm.selectorLabels" .)) -}}
{{- $ns := dict "matchLabels" (dict "kubernetes.io/metadata.name" .root.Release.Namespace) -}}
{{- dict "namespaceSelector" $ns "podSelector" $pods | toJson -}}
{{- end -}}

{{/* Who may reach engine pods on the engine port: this release's router and operator pods and
the configured metrics scrapers (NetworkPolicyPeers, as JSON for --engine-ingress-peers). */}}
{{- define "sagellm.engineIngressPeers" -}}
{{- $peers := list -}}
{{- range $component := list "router" "operator" -}}
{{- $peers = append $peers (include "sagellm.componentPeer" (dict "root" $ "component" $component) | fromJson) -}}
{{- end -}}
{{- concat $peers .Values.networkPolicy.metricsScrapers | toJson -}}
{{- end -}}

{{/* Who may reach the KV-event ports of kv_aware pools' engines: this release's routers
(JSON for --kv-event-peers). */}}
{{- define "sagellm.kvEventPeers" -}}
{{- list (include "sagellm.componentPeer" (dict "root" . "component" "router") | fromJson) | toJson -}}
{{- end -}}
