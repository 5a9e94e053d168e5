{{/*
Names, labels and the pieces the three Deployments share. The environment helpers emit only
settings names of ARCHITECTURE section 7 (and the services' own), each to the services whose
settings class reads it; tests/deploy checks this against the code.
*/}}

{{- define "artifacts.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "artifacts.fullname" -}}
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

{{/* The name of one service's objects: (dict "root" $ "component" "api") */}}
{{- define "artifacts.componentName" -}}
{{- printf "%s-%s" (include "artifacts.fullname" .root | trunc 50 | trimSuffix "-") .component }}
{{- end }}

{{- define "artifacts.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "artifacts.labels" -}}
helm.sh/chart: {{ include "artifacts.chart" .root }}
{{ include "artifacts.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: {{ include "artifacts.name" .root }}
{{- end }}

{{- define "artifacts.selectorLabels" -}}
app.kubernetes.io/name: {{ include "artifacts.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Where PhJobs live: kubeNamespace, else the release's namespace. */}}
{{- define "artifacts.jobNamespace" -}}
{{- default .Release.Namespace .Values.kubeNamespace }}
{{- end }}

{{- define "artifacts.secretName" -}}
{{- default (printf "%s-credentials" (include "artifacts.fullname" .)) .Values.existingSecret }}
{{- end }}

{{/*
The Secret s3-mode uploader sidecars load whole (UPLOADER_S3_SECRET): the user's, or the
chart's S3-only one; empty when the uploaders have no credentials to use.
*/}}
{{- define "artifacts.uploaderSecretName" -}}
{{- if .Values.artifact.uploaderExistingSecret }}
{{- .Values.artifact.uploaderExistingSecret }}
{{- else if and .Values.s3.accessKeyId (not .Values.existingSecret) }}
{{- printf "%s-uploader" (include "artifacts.fullname" .) }}
{{- end }}
{{- end }}

{{/* Whether the services get S3 credentials, from existingSecret or from values. */}}
{{- define "artifacts.hasS3Credentials" -}}
{{- if or .Values.existingSecret .Values.s3.accessKeyId .Values.s3.secretAccessKey }}true{{- end }}
{{- end }}

{{/* An image reference: (dict "root" $ "repository" "artifacts-api") */}}
{{- define "artifacts.image" -}}
{{- $tag := default .root.Chart.AppVersion .root.Values.image.tag }}
{{- if .root.Values.image.registry }}
{{- printf "%s/%s:%s" (trimSuffix "/" .root.Values.image.registry) .repository $tag }}
{{- else }}
{{- printf "%s:%s" .repository $tag }}
{{- end }}
{{- end }}

{{/* Secrets are files under this folder, never environment values. */}}
{{- define "artifacts.secretsDir" -}}/run/secrets/artifacts{{- end }}

{{/* S3 settings (S3Settings): every service. (dict "root" $ "public" true) */}}
{{- define "artifacts.env.s3" -}}
{{- $v := .root.Values }}
{{- with $v.s3.endpointUrl }}
- name: S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- if .public }}
{{- with $v.s3.publicEndpointUrl }}
- name: S3_PUBLIC_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}
- name: S3_REGION
  value: {{ $v.s3.region | quote }}
- name: PHFS_BUCKET
  value: {{ $v.s3.bucket | quote }}
{{- if include "artifacts.hasS3Credentials" .root }}
- name: S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "artifacts.secretName" .root }}
      key: S3_ACCESS_KEY_ID
- name: S3_SECRET_ACCESS_KEY_FILE
  value: {{ include "artifacts.secretsDir" .root }}/S3_SECRET_ACCESS_KEY
{{- end }}
{{- end }}

{{/* REDIS_URL (RedisSettings): the api, the janitor, and the controller (the expiry index). */}}
{{- define "artifacts.env.redis" -}}
- name: REDIS_URL
{{- if .Values.redis.urlSecret.name }}
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.urlSecret.name }}
      key: {{ required "redis.urlSecret.key is required with redis.urlSecret.name" .Values.redis.urlSecret.key }}
{{- else }}
  value: {{ .Values.redis.url | quote }}
{{- end }}
{{- end }}

{{/* Collection defaults (ArtifactPolicySettings): the controller and the api. */}}
{{- define "artifacts.env.artifactPolicy" -}}
- name: ARTIFACT_ENABLED
  value: {{ .Values.artifact.enabled | quote }}
- name: ARTIFACT_RETENTION_SECONDS
  value: {{ .Values.artifact.retentionSeconds | int64 | quote }}
- name: ARTIFACT_LIMIT_SIZE_MB
  value: {{ .Values.artifact.limitSizeMb | int64 | quote }}
- name: ARTIFACT_LIMIT_FILES
  value: {{ .Values.artifact.limitFiles | int64 | quote }}
- name: ARTIFACT_JOB_LOG_LIMIT_MB
  value: {{ .Values.artifact.jobLogLimitMb | int64 | quote }}
{{- end }}

{{/* Instance types (InstanceTypeSettings): the api offers them, the controller applies them. */}}
{{- define "artifacts.env.instanceTypes" -}}
- name: INSTANCE_TYPES
  value: {{ .Values.instanceTypes | toJson | quote }}
{{- end }}

{{/* Where the PhJobs are: the controller and the api. */}}
{{- define "artifacts.env.kube" -}}
- name: KUBE_NAMESPACE
  value: {{ include "artifacts.jobNamespace" . | quote }}
- name: CONTROLLER_RUNTIME
  value: {{ .Values.controller.runtime | quote }}
{{- end }}

{{/* The credentials volume, with only the keys this service reads: (dict "root" $ "keys" (list ...)) */}}
{{- define "artifacts.secretVolume" -}}
- name: credentials
  secret:
    secretName: {{ include "artifacts.secretName" .root }}
    defaultMode: 0440
    items:
      {{- range .keys }}
      - key: {{ . }}
        path: {{ . }}
      {{- end }}
{{- end }}

{{/* Pod-level fields every Deployment shares: (dict "root" $ "svc" .Values.api) */}}
{{- define "artifacts.podCommon" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .svc.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .svc.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .svc.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Pod annotations: the user's, plus a checksum that rolls the pods when the credentials in the
values change (of the values, not the rendered Secret, whose generated key is not stable).
*/}}
{{- define "artifacts.podAnnotations" -}}
{{- $v := .root.Values }}
checksum/credentials: {{ list $v.existingSecret $v.s3.accessKeyId $v.s3.secretAccessKey $v.api.auth.jwtSecret $v.api.linkSigningKey | toJson | sha256sum }}
{{- with .svc.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}
