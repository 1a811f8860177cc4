{{/* Names, labels and the pieces every rlog pod shares. */}}

{{- define "rlog.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rlog.fullname" -}}
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

{{- define "rlog.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "rlog.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "rlog.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rlog.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rlog.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "rlog.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "rlog.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The checks every render makes: a broker to talk to, and each role in exactly one fleet. */}}
{{- define "rlog.validate" -}}
{{- if not .Values.kafka.bootstrap -}}
{{- fail "kafka.bootstrap is required: the bootstrap servers of the cluster rlog runs beside (host:port[,host:port])" -}}
{{- end -}}
{{- $owner := dict -}}
{{- range $w := .Values.workers -}}
{{- range $r := $w.roles -}}
{{- if hasKey $owner $r -}}
{{- fail (printf "role %s is in fleets %s and %s: two consumer groups would both read its input and every session would be judged twice. Run either one all-roles fleet or per-role fleets, never both on one input" $r (get $owner $r) $w.name) -}}
{{- end -}}
{{- $_ := set $owner $r $w.name -}}
{{- end -}}
{{- end -}}
{{- range $r := list "parse" "detect" "explain" -}}
{{- if not (hasKey $owner $r) -}}
{{- fail (printf "role %s is in no fleet under workers: its input topic would fill and nothing would read it" $r) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Kafka settings as the worker reads them: RLOG_KAFKA_* from the existing Secret, the TLS files mounted. */}}
{{- define "rlog.kafkaEnv" -}}
- name: RLOG_KAFKA_BROKER
  value: {{ .Values.kafka.bootstrap | quote }}
{{- if .Values.kafka.existingSecret }}
{{- range $setting, $key := .Values.kafka.secretKeys }}
{{- if $key }}
- name: RLOG_KAFKA_{{ $setting | snakecase | upper | replace "SASL_USERNAME" "SASL_PLAIN_USERNAME" | replace "SASL_PASSWORD" "SASL_PLAIN_PASSWORD" }}
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.kafka.existingSecret }}
      key: {{ $key }}
      optional: true
{{- end }}
{{- end }}
{{- end }}
{{- if .Values.kafka.tlsSecret }}
{{- range $setting, $file := .Values.kafka.tlsFiles }}
{{- if $file }}
- name: RLOG_KAFKA_SSL_{{ $setting | upper }}
  value: /etc/rlog/kafka-tls/{{ $file }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The key sealing parse-state records (HMAC), from an existing Secret: a worker refuses state it did not
write. previousKey (a key of the same Secret) still verifies during a rotation. */}}
{{- define "rlog.stateKeyEnv" -}}
{{- with .Values.stateKey }}
{{- if .existingSecret }}
- name: RLOG_STATE_KEY
  valueFrom:
    secretKeyRef: {name: {{ .existingSecret }}, key: {{ .key }}}
{{- if .previousKey }}
- name: RLOG_STATE_KEY_PREVIOUS
  valueFrom:
    secretKeyRef: {name: {{ .existingSecret }}, key: {{ .previousKey }}, optional: true}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}
