{{/*
One callscope pod template. Parameters (dict):
  ctx        the root context
  component  collector | ami | processors | api (labels, container name)
  role       the `callscope run --role` value
  section    the component's values (resources, nodeSelector, tolerations, affinity, podAnnotations, extraEnv)
  httpPort   the port of /healthz, /readyz, /metrics (and the API)
  store      whether the role opens the store (gets the DSN)
  env        extra env entries (YAML list text)
  ports      extra container ports (YAML list text)
  volumes    extra volumes (YAML list text)
  mounts     extra volume mounts (YAML list text)
  hostNetwork
*/}}
{{- define "callscope.podTemplate" -}}
{{- $ctx := .ctx -}}
{{- $s := .section -}}
metadata:
  labels:
    {{- include "callscope.componentSelector" (dict "ctx" $ctx "component" .component) | nindent 4 }}
  annotations:
    checksum/config: {{ include "callscope.config" $ctx | sha256sum }}
    {{- /* Credentials given in values: a change rolls the pods (existing Secrets are the owner's to roll). */}}
    checksum/credentials: {{ list $ctx.Values.clickhouse.password $ctx.Values.kafka.sasl.password $ctx.Values.api.tokens $ctx.Values.ami.connections | toJson | sha256sum }}
    {{- with $s.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "callscope.serviceAccountName" $ctx }}
  automountServiceAccountToken: false
  {{- with $ctx.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .hostNetwork }}
  hostNetwork: true
  dnsPolicy: ClusterFirstWithHostNet
  {{- end }}
  securityContext:
    {{- toYaml $ctx.Values.podSecurityContext | nindent 4 }}
  {{- with $s.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $s.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $s.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  terminationGracePeriodSeconds: 30
  containers:
    - name: {{ .component }}
      image: {{ include "callscope.image" $ctx }}
      imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
      args:
        {{- include "callscope.args" .role | nindent 8 }}
      env:
        - name: CALLSCOPE_API__LISTEN
          value: {{ printf "0.0.0.0:%d" (int .httpPort) | quote }}
        {{- with (include "callscope.secretEnv" (dict "ctx" $ctx "store" .store) | trim) }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with .env }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with $s.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: http
          containerPort: {{ .httpPort }}
          protocol: TCP
        {{- with .ports }}
        {{- . | nindent 8 }}
        {{- end }}
      {{- include "callscope.probes" $ctx | nindent 6 }}
      resources:
        {{- toYaml $s.resources | nindent 8 }}
      securityContext:
        {{- toYaml $ctx.Values.securityContext | nindent 8 }}
      volumeMounts:
        {{- include "callscope.baseMounts" $ctx | nindent 8 }}
        {{- with .mounts }}
        {{- . | nindent 8 }}
        {{- end }}
  volumes:
    {{- include "callscope.baseVolumes" $ctx | nindent 4 }}
    {{- with .volumes }}
    {{- . | nindent 4 }}
    {{- end }}
{{- end -}}
