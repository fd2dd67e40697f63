{{/* Names and labels. */}}
{{- define "callscope.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "callscope.fullname" -}}
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

{{- define "callscope.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "callscope.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "callscope.selectorLabels" -}}
app.kubernetes.io/name: {{ include "callscope.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one component: (dict "ctx" $ "component" "api") */}}
{{- define "callscope.componentLabels" -}}
{{ include "callscope.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "callscope.componentSelector" -}}
{{ include "callscope.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "callscope.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "callscope.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "callscope.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret the chart creates (credentials given in values). */}}
{{- define "callscope.secretName" -}}
{{- printf "%s-secrets" (include "callscope.fullname" .) -}}
{{- end -}}

{{- define "callscope.amiSecretName" -}}
{{- default (printf "%s-ami" (include "callscope.fullname" .)) .Values.ami.existingSecret -}}
{{- end -}}

{{/* The key of ami secret for one connection. */}}
{{- define "callscope.amiKey" -}}
{{- default .node .secretKey -}}
{{- end -}}

{{- define "callscope.configPath" -}}/etc/callscope/config/callscope.yaml{{- end -}}
{{- define "callscope.dataDir" -}}/var/lib/callscope{{- end -}}
{{- define "callscope.amiSecretDir" -}}/etc/callscope/ami{{- end -}}

{{/* Does the chart's own Secret have anything to hold? */}}
{{- define "callscope.chartSecretNeeded" -}}
{{- if or (and .Values.clickhouse.password (not .Values.clickhouse.existingSecret)) (and .Values.kafka.sasl.password (not .Values.kafka.sasl.existingSecret)) (and .Values.api.enabled (not .Values.api.existingSecret)) -}}
true
{{- end -}}
{{- end -}}

{{/*
The API tokens as JSON. Without api.tokens and api.existingSecret, one admin token is generated
once and kept across upgrades (read back from the Secret); every API replica shares it, unlike the
per-process token file `callscope run` writes when it has none.
*/}}
{{- define "callscope.apiTokensJson" -}}
{{- if .Values.api.tokens -}}
{{- .Values.api.tokens | toJson -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "callscope.secretName" .) -}}
{{- if and $existing (hasKey (default (dict) $existing.data) "api-tokens") -}}
{{- index $existing.data "api-tokens" | b64dec -}}
{{- else -}}
{{- list (dict "name" "generated-admin" "token" (randAlphaNum 40) "scope" "admin") | toJson -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Checks that need more than one value (the schema checks each value alone). */}}
{{- define "callscope.validate" -}}
{{- if and .Values.processors.enabled (gt (int .Values.processors.replicas) (int .Values.kafka.partitions)) -}}
{{- fail (printf "processors.replicas (%d) must not exceed kafka.partitions (%d): a consumer group gives each partition to one replica, the others would sit idle" (int .Values.processors.replicas) (int .Values.kafka.partitions)) -}}
{{- end -}}
{{- if and .Values.collector.hostNetwork (ne .Values.collector.kind "DaemonSet") -}}
{{- fail "collector.hostNetwork needs collector.kind DaemonSet (one pod per node holds the node's HEP port)" -}}
{{- end -}}
{{- if and .Values.kafka.sasl.mechanism (not (hasPrefix "SASL_" .Values.kafka.securityProtocol)) -}}
{{- fail "kafka.sasl.mechanism needs kafka.securityProtocol SASL_PLAINTEXT or SASL_SSL" -}}
{{- end -}}
{{- range $i, $c := .Values.ami.connections -}}
{{- if and $c.secret $.Values.ami.existingSecret -}}
{{- fail (printf "ami.connections[%d].secret: give secretKey of ami.existingSecret instead of a secret when ami.existingSecret is set" $i) -}}
{{- end -}}
{{- if and (not $c.secret) (not $.Values.ami.existingSecret) -}}
{{- fail (printf "ami.connections[%d]: set secret, or ami.existingSecret (and optionally secretKey)" $i) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The callscope configuration: values.config deep-merged under what the chart owns. */}}
{{- define "callscope.config" -}}
{{- $v := .Values -}}
{{- $kafka := dict "bootstrap_servers" $v.kafka.bootstrapServers "partitions" (int $v.kafka.partitions) "replication_factor" (int $v.kafka.replicationFactor) "compression" $v.kafka.compression "security_protocol" $v.kafka.securityProtocol -}}
{{- if $v.kafka.sasl.mechanism -}}
{{- $_ := set $kafka "sasl_mechanism" $v.kafka.sasl.mechanism -}}
{{- $_ := set $kafka "sasl_username" $v.kafka.sasl.username -}}
{{- end -}}
{{- $store := dict "database" $v.clickhouse.database "ttl_days" (int $v.clickhouse.ttlDays) -}}
{{- if $v.clickhouse.cluster -}}{{- $_ := set $store "cluster" $v.clickhouse.cluster -}}{{- end -}}
{{- if not (or $v.clickhouse.password $v.clickhouse.existingSecret) -}}
{{- $u := urlParse $v.clickhouse.endpoint -}}
{{- $user := ternary (printf "%s@" (urlquery $v.clickhouse.username)) "" (ne $v.clickhouse.username "") -}}
{{- $_ := set $store "dsn" (printf "%s://%s%s" $u.scheme $user $u.host) -}}
{{- end -}}
{{- $api := dict "listen" (printf "0.0.0.0:%d" (int $v.api.port)) "auth" (dict "enabled" true) -}}
{{- if $v.api.publicUrl -}}{{- $_ := set $api "public_url" $v.api.publicUrl -}}{{- end -}}
{{- $conns := list -}}
{{- range $v.ami.connections -}}
{{- $c := omit . "secret" "secretKey" -}}
{{- $_ := set $c "secret_file" (printf "%s/%s" (include "callscope.amiSecretDir" $) (include "callscope.amiKey" .)) -}}
{{- $conns = append $conns $c -}}
{{- end -}}
{{- $collectors := dict "hep" (dict "listen" (printf "0.0.0.0:%d" (int $v.collector.hepPort))) "ami" (dict "connections" $conns) -}}
{{- $owned := dict "node" $.Release.Name "data_dir" (include "callscope.dataDir" .) "bus" (dict "kind" "kafka" "kafka" $kafka) "store" $store "api" $api "collectors" $collectors -}}
{{- $cfg := mustMergeOverwrite (deepCopy (default (dict) $v.config)) $owned -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Env every callscope container gets: secrets as CALLSCOPE_* variables. (dict "ctx" $ "store" bool) */}}
{{- define "callscope.secretEnv" -}}
{{- $v := .ctx.Values -}}
{{- if and .store (or $v.clickhouse.password $v.clickhouse.existingSecret) }}
- name: CALLSCOPE_STORE__DSN
  valueFrom:
    secretKeyRef:
      name: {{ default (include "callscope.secretName" .ctx) $v.clickhouse.existingSecret }}
      key: {{ if $v.clickhouse.existingSecret }}{{ $v.clickhouse.dsnKey }}{{ else }}store-dsn{{ end }}
{{- end }}
{{- if $v.kafka.sasl.mechanism }}
- name: CALLSCOPE_BUS__KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ default (include "callscope.secretName" .ctx) $v.kafka.sasl.existingSecret }}
      key: {{ if $v.kafka.sasl.existingSecret }}{{ $v.kafka.sasl.passwordKey }}{{ else }}kafka-sasl-password{{ end }}
{{- end }}
{{- end -}}

{{/* Probes on the container's http port. */}}
{{- define "callscope.probes" -}}
livenessProbe:
  httpGet: {path: /healthz, port: http}
  {{- toYaml .Values.probes.liveness | nindent 2 }}
readinessProbe:
  httpGet: {path: /readyz, port: http}
  {{- toYaml .Values.probes.readiness | nindent 2 }}
{{- end -}}

{{/* Volumes every pod has: config, writable data dir and /tmp (root filesystem is read-only). */}}
{{- define "callscope.baseVolumes" -}}
- name: config
  configMap:
    name: {{ include "callscope.fullname" . }}-config
- name: data
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "callscope.baseMounts" -}}
- name: config
  mountPath: /etc/callscope/config
  readOnly: true
- name: data
  mountPath: {{ include "callscope.dataDir" . }}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* Container args of a role. */}}
{{- define "callscope.args" -}}
- run
- --role
- {{ . }}
- --config
- /etc/callscope/config/callscope.yaml
{{- end -}}
