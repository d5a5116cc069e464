{{/* Names, labels and the pieces every container shares. */}}

{{- define "sb.fullname" -}}
{{- printf "%s-switchboard" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "sb.labels" -}}
app.kubernetes.io/name: switchboard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one service: (dict "root" $ "svc" "gateway") */}}
{{- define "sb.selector" -}}
app.kubernetes.io/name: switchboard
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .svc }}
{{- end -}}

{{- define "sb.image" -}}
{{- printf "%s/switchboard-%s:%s" .root.Values.image.registry .svc (default .root.Chart.AppVersion .root.Values.image.tag) -}}
{{- end -}}

{{/* The Secret holding chart-managed secret values. */}}
{{- define "sb.secretName" -}}
{{- printf "%s-secrets" (include "sb.fullname" .) -}}
{{- end -}}

{{/* Whether the chart renders its own Secret (some secret value is given inline). */}}
{{- define "sb.ownSecret" -}}
{{- $v := .Values -}}
{{- if or (and $v.auth.hs256Secret (not $v.auth.existingSecret.name)) (and $v.auth.rs256PublicKeys (not $v.auth.existingSecret.name)) (and $v.turn.secret (not $v.turn.existingSecret.name)) (and $v.database.url (not $v.database.existingSecret.name)) -}}
true
{{- end -}}
{{- end -}}

{{/* Pod security: non-root uid 10001, RuntimeDefault seccomp. */}}
{{- define "sb.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{/* Container security: read-only root, no privilege escalation, no capabilities. */}}
{{- define "sb.containerSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  readOnlyRootFilesystem: true
  allowPrivilegeEscalation: false
  capabilities:
    drop: [ALL]
{{- end -}}

{{/* Probes and the HTTP port: (dict "port" 8080) */}}
{{- define "sb.probes" -}}
livenessProbe:
  httpGet: { path: /healthz, port: http }
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: { path: /readyz, port: http }
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{/* Environment every service gets: (dict "root" $ "svc" "rooms" "port" 8081) */}}
{{- define "sb.env" -}}
- name: INSTANCE_ID
  valueFrom: { fieldRef: { fieldPath: metadata.name } }
- name: HTTP_PORT
  value: {{ .port | quote }}
{{- range $k, $v := (index .root.Values .svc).env }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- end -}}

{{/* A secretKeyRef env var: (dict "name" "X" "secret" "s" "key" "k") */}}
{{- define "sb.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef: { name: {{ .secret | quote }}, key: {{ .key | quote }} }
{{- end -}}

{{- define "sb.tmp" -}}
volumeMounts:
  - { name: tmp, mountPath: /tmp }
{{- end -}}

{{/*
DATABASE_URL from the existing Secret, or from the Secret named "secret" holding the chart's
value (one of the two is required): (dict "root" $ "secret" "name")
*/}}
{{- define "sb.databaseEnv" -}}
{{- $db := .root.Values.database -}}
{{- if $db.existingSecret.name -}}
{{ include "sb.secretEnv" (dict "name" "DATABASE_URL" "secret" $db.existingSecret.name "key" $db.existingSecret.key) }}
{{- else if $db.url -}}
{{ include "sb.secretEnv" (dict "name" "DATABASE_URL" "secret" .secret "key" "DATABASE_URL") }}
{{- else -}}
{{- fail "database.url or database.existingSecret.name is required" -}}
{{- end -}}
{{- end -}}

{{/* The gateway's token keys and TURN secret, from the existing Secrets or the chart's. */}}
{{- define "sb.gatewaySecretEnv" -}}
{{- $a := .Values.auth -}}
{{- $t := .Values.turn -}}
{{- $own := include "sb.secretName" . -}}
{{- if $a.existingSecret.name }}
{{- if $a.existingSecret.hs256Key }}
{{ include "sb.secretEnv" (dict "name" "AUTH_HS256_SECRET" "secret" $a.existingSecret.name "key" $a.existingSecret.hs256Key) }}
{{- end }}
{{- if $a.existingSecret.rs256Key }}
{{ include "sb.secretEnv" (dict "name" "AUTH_RS256_PUBLIC_KEYS" "secret" $a.existingSecret.name "key" $a.existingSecret.rs256Key) }}
{{- end }}
{{- else if or $a.hs256Secret $a.rs256PublicKeys }}
{{- if $a.hs256Secret }}
{{ include "sb.secretEnv" (dict "name" "AUTH_HS256_SECRET" "secret" $own "key" "AUTH_HS256_SECRET") }}
{{- end }}
{{- if $a.rs256PublicKeys }}
{{ include "sb.secretEnv" (dict "name" "AUTH_RS256_PUBLIC_KEYS" "secret" $own "key" "AUTH_RS256_PUBLIC_KEYS") }}
{{- end }}
{{- else }}
{{- fail "auth: set hs256Secret, rs256PublicKeys or existingSecret.name (the gateway verifies tokens with them)" }}
{{- end }}
{{- if $t.existingSecret.name }}
{{ include "sb.secretEnv" (dict "name" "TURN_SECRET" "secret" $t.existingSecret.name "key" $t.existingSecret.key) }}
{{- else if $t.secret }}
{{ include "sb.secretEnv" (dict "name" "TURN_SECRET" "secret" $own "key" "TURN_SECRET") }}
{{- end }}
{{- end -}}
