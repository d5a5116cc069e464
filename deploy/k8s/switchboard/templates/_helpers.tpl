{{/* Names, labels and the pieces every container shares. */}}

{{/*
The release's name prefix. At most 45 characters: a StatefulSet name (prefix + "-media") must
leave room for the controller-revision-hash label (name + "-" + 10 characters <= 63).
*/}}
{{- define "sb.fullname" -}}
{{- printf "%s-switchboard" .Release.Name | trunc 45 | trimSuffix "-" -}}
{{- end -}}

{{- define "sb.labels" -}}
app.kubernetes.io/name: switchboard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one service: (dict "root" $ "svc" "gateway") */}}
{{/* The label of Services the ServiceMonitor scrapes (those carrying a port named ops). */}}
{{- define "sb.scrapeLabel" -}}
switchboard.dev/scrape: ops
{{- end -}}

{{- define "sb.selector" -}}
app.kubernetes.io/name: switchboard
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .svc }}
{{- end -}}

{{/*
The image of one service: <registry>/<repository>:<tag>, each part from the service's own
`image` values when set, else from the global `image` (repository: switchboard-<service>, tag:
the chart's appVersion). (dict "root" $ "svc" "rooms")
*/}}
{{- define "sb.image" -}}
{{- $g := .root.Values.image -}}
{{- $own := (index .root.Values .svc).image | default dict -}}
{{- $registry := $own.registry | default $g.registry -}}
{{- $repository := $own.repository | default (printf "switchboard-%s" .svc) -}}
{{- $tag := $own.tag | default $g.tag | default .root.Chart.AppVersion -}}
{{- printf "%s/%s:%s" $registry $repository (toString $tag) -}}
{{- end -}}

{{- define "sb.pullPolicy" -}}
{{- $own := (index .root.Values .svc).image | default dict -}}
{{- $own.pullPolicy | default .root.Values.image.pullPolicy -}}
{{- end -}}

{{/*
A number for the environment: Helm reads numbers of values files as floats, which print as
1.2e+06; the schema allows integers only, printed here in full.
*/}}
{{- define "sb.int" -}}
{{- . | int64 | toString -}}
{{- end -}}

{{/* One `env` value: integers in full, lists and maps as JSON, the rest as text. */}}
{{- define "sb.envValue" -}}
{{- if or (kindIs "float64" .) (kindIs "int64" .) (kindIs "int" .) -}}
{{- include "sb.int" . -}}
{{- else if or (kindIs "slice" .) (kindIs "map" .) -}}
{{- toJson . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/* terminationGracePeriodSeconds: SHUTDOWN_TIMEOUT_MS, rounded up, plus 10 s. */}}
{{- define "sb.grace" -}}
{{- add (div (add (int64 .Values.shutdownTimeoutMs) 999) 1000) 10 -}}
{{- end -}}

{{/* The Secret holding chart-managed secret values. */}}
{{- define "sb.secretName" -}}
{{- printf "%s-secrets" (include "sb.fullname" .) -}}
{{- end -}}

{{/*
Refuse a secret given both inline and through an existing Secret: the inline one would be
silently ignored.
*/}}
{{- define "sb.checkSecrets" -}}
{{- $v := .Values -}}
{{- if and $v.auth.existingSecret.name (or $v.auth.hs256Secret $v.auth.rs256PublicKeys) -}}
{{- fail (printf "auth: hs256Secret/rs256PublicKeys are given and auth.existingSecret.name (%s) too; set auth.existingSecret.name='' to keep them in the chart's Secret, or leave them empty" $v.auth.existingSecret.name) -}}
{{- end -}}
{{- if and $v.turn.existingSecret.name $v.turn.secret -}}
{{- fail (printf "turn: turn.secret is given and turn.existingSecret.name (%s) too; use one" $v.turn.existingSecret.name) -}}
{{- end -}}
{{- if and $v.database.existingSecret.name $v.database.url -}}
{{- fail (printf "database: database.url is given and database.existingSecret.name (%s) too; set database.existingSecret.name='' to keep the URL in the chart's Secret" $v.database.existingSecret.name) -}}
{{- end -}}
{{- if and (not $v.database.existingSecret.name) (not $v.database.url) -}}
{{- fail "database: set database.url or database.existingSecret.name (the rooms service and the migrations need DATABASE_URL)" -}}
{{- end -}}
{{- if and $v.api.enabled $v.api.existingSecret.name $v.api.keys -}}
{{- fail (printf "api: api.keys is given and api.existingSecret.name (%s) too; set api.existingSecret.name='' to keep the keys in the chart's Secret, or leave api.keys empty" $v.api.existingSecret.name) -}}
{{- end -}}
{{- if and $v.api.enabled (not $v.api.existingSecret.name) (not $v.api.keys) -}}
{{- fail "api: set api.keys or api.existingSecret.name (the server API's keys, key:secret per line), or api.enabled=false" -}}
{{- end -}}
{{- range $svc := list "gateway" "rooms" "media" "events" "api" -}}
{{- $a := index $v.nats.auth $svc -}}
{{- $keys := 0 -}}
{{- range $k := list $a.passwordKey $a.nkeySeedKey $a.credsKey }}{{ if $k }}{{ $keys = add1 $keys }}{{ end }}{{ end -}}
{{- if and $a.existingSecret (ne (int $keys) 1) -}}
{{- fail (printf "nats.auth.%s: with existingSecret (%s), give exactly one of passwordKey, nkeySeedKey, credsKey (the key of the Secret holding the credential)" $svc $a.existingSecret) -}}
{{- end -}}
{{- if and (not $a.existingSecret) (or $keys $a.user) -}}
{{- fail (printf "nats.auth.%s: passwordKey/nkeySeedKey/credsKey/user need existingSecret (the Secret holding the credential)" $svc) -}}
{{- end -}}
{{- if and $a.user (not $a.passwordKey) -}}
{{- fail (printf "nats.auth.%s: user goes with passwordKey" $svc) -}}
{{- end -}}
{{- end -}}
{{- $t := $v.nats.tls -}}
{{- if and $t.existingSecret (not (or $t.caKey $t.certKey)) -}}
{{- fail "nats.tls: existingSecret needs caKey, certKey and keyKey, or both" -}}
{{- end -}}
{{- if ne (not $t.certKey) (not $t.keyKey) -}}
{{- fail "nats.tls: certKey and keyKey go together (a client certificate and its key)" -}}
{{- end -}}
{{- if and (not $t.existingSecret) (or $t.certKey) -}}
{{- fail "nats.tls: certKey/keyKey need existingSecret" -}}
{{- end -}}
{{- if not (or $v.auth.existingSecret.name $v.auth.hs256Secret $v.auth.rs256PublicKeys) -}}
{{- fail "auth: set hs256Secret, rs256PublicKeys or existingSecret.name (the gateway verifies tokens with them)" -}}
{{- end -}}
{{- if and $v.auth.existingSecret.name (not (or $v.auth.existingSecret.hs256Key $v.auth.existingSecret.rs256Key)) -}}
{{- fail "auth: auth.existingSecret needs hs256Key, rs256Key or both (the key names in that Secret)" -}}
{{- end -}}
{{- end -}}

{{/* Whether the chart renders its own Secret (some secret value is given inline). */}}
{{- define "sb.ownSecret" -}}
{{- $v := .Values -}}
{{- if or $v.auth.hs256Secret $v.auth.rs256PublicKeys $v.turn.secret $v.database.url (and $v.api.enabled $v.api.keys) -}}
true
{{- end -}}
{{- end -}}

{{/*
Pod-level settings every pod shares: non-root uid 10001, RuntimeDefault seccomp, no service
account token (no service talks to the Kubernetes API), the image pull secrets.
*/}}
{{- define "sb.podSecurity" -}}
automountServiceAccountToken: false
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Container security: read-only root, no privilege escalation, no capabilities. */}}
{{- define "sb.containerSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  readOnlyRootFilesystem: true
  allowPrivilegeEscalation: false
  capabilities:
    drop: [ALL]
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{/*
Probes on the port named http (the one HTTP_PORT says): /healthz and /readyz answer there
and on the ops port; the probes follow the path clients take.
*/}}
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

{{/* Pod annotations: the checksums of the configuration, so a change rolls the pods. */}}
{{- define "sb.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end -}}

{{/* Environment every service gets: (dict "root" $ "svc" "rooms" "port" 8081 "opsPort" 9081) */}}
{{- define "sb.env" -}}
- name: INSTANCE_ID
  valueFrom: { fieldRef: { fieldPath: metadata.name } }
- name: HTTP_PORT
  value: {{ include "sb.int" .port | quote }}
- name: OPS_PORT
  value: {{ include "sb.int" .opsPort | quote }}
{{- if .root.Values.nats.existingSecret.name }}
{{ include "sb.secretEnv" (dict "name" "NATS_URL" "secret" .root.Values.nats.existingSecret.name "key" .root.Values.nats.existingSecret.key) }}
{{- end }}
{{- with include "sb.natsEnv" . }}{{ . | trim | nindent 0 }}{{ end }}
{{- range $k, $v := (index .root.Values .svc).env }}
- name: {{ $k }}
  value: {{ include "sb.envValue" $v | quote }}
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
Where a service's NATS credentials and TLS files are mounted (nats.auth.<service>,
nats.tls): files from existing Secrets, never environment variables.
*/}}
{{- define "sb.natsAuthDir" -}}/var/run/secrets/switchboard/nats{{- end -}}
{{/* Where the server API's keys are mounted (API_KEYS_FILE is keys in it). */}}
{{- define "sb.apiKeysDir" -}}/var/run/secrets/switchboard/api{{- end -}}
{{- define "sb.natsTlsDir" -}}/var/run/secrets/switchboard/nats-tls{{- end -}}

{{/* The file name of a service's NATS credential: (index .Values.nats.auth "gateway") */}}
{{- define "sb.natsAuthFile" -}}
{{- if .passwordKey -}}password{{- else if .nkeySeedKey -}}nkey.seed{{- else if .credsKey -}}user.creds{{- end -}}
{{- end -}}

{{/* NATS_USER, NATS_*_FILE and NATS_TLS_*_FILE of a service: (dict "root" $ "svc" "rooms") */}}
{{- define "sb.natsEnv" -}}
{{- $a := index .root.Values.nats.auth .svc -}}
{{- $t := .root.Values.nats.tls -}}
{{- $dir := include "sb.natsAuthDir" . -}}
{{- if $a.existingSecret }}
{{- if $a.passwordKey }}
- { name: NATS_USER, value: {{ $a.user | default .svc | quote }} }
- { name: NATS_PASSWORD_FILE, value: {{ printf "%s/password" $dir | quote }} }
{{- else if $a.nkeySeedKey }}
- { name: NATS_NKEY_SEED_FILE, value: {{ printf "%s/nkey.seed" $dir | quote }} }
{{- else if $a.credsKey }}
- { name: NATS_CREDS_FILE, value: {{ printf "%s/user.creds" $dir | quote }} }
{{- end }}
{{- end }}
{{- if $t.existingSecret }}
{{- $tls := include "sb.natsTlsDir" . -}}
{{- if $t.caKey }}
- { name: NATS_TLS_CA_FILE, value: {{ printf "%s/ca.crt" $tls | quote }} }
{{- end }}
{{- if $t.certKey }}
- { name: NATS_TLS_CERT_FILE, value: {{ printf "%s/tls.crt" $tls | quote }} }
- { name: NATS_TLS_KEY_FILE, value: {{ printf "%s/tls.key" $tls | quote }} }
{{- end }}
{{- end }}
{{- end -}}

{{/* A service container's mounts: /tmp, and its NATS credentials and TLS files. */}}
{{- define "sb.mounts" -}}
volumeMounts:
  - { name: tmp, mountPath: /tmp }
{{- if (index .root.Values.nats.auth .svc).existingSecret }}
  - { name: nats-auth, mountPath: {{ include "sb.natsAuthDir" . }}, readOnly: true }
{{- end }}
{{- if .root.Values.nats.tls.existingSecret }}
  - { name: nats-tls, mountPath: {{ include "sb.natsTlsDir" . }}, readOnly: true }
{{- end }}
{{- end -}}

{{/*
The Secret volumes of a service's NATS credentials and TLS files: only the keys it needs,
readable by the pod's group (fsGroup 10001; mode 0440) and nobody else.
*/}}
{{- define "sb.natsVolumes" -}}
{{- $a := index .root.Values.nats.auth .svc -}}
{{- $t := .root.Values.nats.tls -}}
{{- if $a.existingSecret }}
- name: nats-auth
  secret:
    secretName: {{ $a.existingSecret | quote }}
    defaultMode: 288
    items:
      - key: {{ $a.passwordKey | default $a.nkeySeedKey | default $a.credsKey | quote }}
        path: {{ include "sb.natsAuthFile" $a }}
{{- end }}
{{- if $t.existingSecret }}
- name: nats-tls
  secret:
    secretName: {{ $t.existingSecret | quote }}
    defaultMode: 288
    items:
      {{- if $t.caKey }}
      - { key: {{ $t.caKey | quote }}, path: ca.crt }
      {{- end }}
      {{- if $t.certKey }}
      - { key: {{ $t.certKey | quote }}, path: tls.crt }
      - { key: {{ $t.keyKey | quote }}, path: tls.key }
      {{- end }}
{{- end }}
{{- end -}}

{{/*
DATABASE_URL from the existing Secret, or from the Secret named "secret" holding the chart's
value: (dict "root" $ "secret" "name")
*/}}
{{- define "sb.databaseEnv" -}}
{{- $db := .root.Values.database -}}
{{- if $db.existingSecret.name -}}
{{ include "sb.secretEnv" (dict "name" "DATABASE_URL" "secret" $db.existingSecret.name "key" $db.existingSecret.key) }}
{{- else -}}
{{ include "sb.secretEnv" (dict "name" "DATABASE_URL" "secret" .secret "key" "DATABASE_URL") }}
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
{{- else }}
{{- if $a.hs256Secret }}
{{ include "sb.secretEnv" (dict "name" "AUTH_HS256_SECRET" "secret" $own "key" "AUTH_HS256_SECRET") }}
{{- end }}
{{- if $a.rs256PublicKeys }}
{{ include "sb.secretEnv" (dict "name" "AUTH_RS256_PUBLIC_KEYS" "secret" $own "key" "AUTH_RS256_PUBLIC_KEYS") }}
{{- end }}
{{- end }}
{{- if $t.existingSecret.name }}
{{ include "sb.secretEnv" (dict "name" "TURN_SECRET" "secret" $t.existingSecret.name "key" $t.existingSecret.key) }}
{{- else if $t.secret }}
{{ include "sb.secretEnv" (dict "name" "TURN_SECRET" "secret" $own "key" "TURN_SECRET") }}
{{- end }}
{{- end -}}

{{/* Where the pods of a service may run: (index .Values "gateway") */}}
{{- define "sb.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
