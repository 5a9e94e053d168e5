"""The GraphQL documents the client sends: the API's public schema is its only contract.

Each document asks for exactly what ``models.py`` reads, so the API's cost limit and the
response size stay small; ``downloadUrl`` is asked for only where a download needs it
(signing a link per file is work for the API).
"""

from __future__ import annotations

__all__ = [
    "ARTIFACT",
    "ARTIFACTS",
    "CANCEL_JOB",
    "CLEANUP",
    "CLEANUP_RUN",
    "CREATE_JOB",
    "DELETE_ARTIFACTS",
    "JOB",
    "JOBS",
    "LOGS",
    "RETENTION",
    "SET_EXPIRY",
]

_JOB = """
  id displayName groupName userName phase command image
  createTime startTime finishTime message cancel
  inputArtifacts { jobId path fileCount totalSize }
"""

_ITEM = "name size lastModified sha256 mode downloadUrl"

JOBS = f"""
query Jobs($where: PhJobWhereInput, $first: Int, $after: String) {{
  phJobs(where: $where, first: $first, after: $after) {{
    nodes {{ {_JOB} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""

JOB = f"""
query Job($id: ID!) {{
  phJob(where: {{id: $id}}) {{ {_JOB} }}
}}
"""

ARTIFACTS = f"""
query Artifacts($id: ID!) {{
  phJob(where: {{id: $id}}) {{
    id
    artifact {{ prefix expiredAt skipped skipReason items {{ {_ITEM} }} }}
  }}
}}
"""

ARTIFACT = f"""
query Artifact($id: ID!, $name: String!) {{
  phJob(where: {{id: $id}}) {{
    id
    artifact {{ item(name: $name) {{ {_ITEM} }} }}
  }}
}}
"""

CREATE_JOB = f"""
mutation CreateJob($data: PhJobCreateInput!) {{
  createPhJob(data: $data) {{ {_JOB} }}
}}
"""

CANCEL_JOB = f"""
mutation CancelJob($id: ID!) {{
  cancelPhJob(where: {{id: $id}}) {{ {_JOB} }}
}}
"""

LOGS = """
query Logs($id: ID!, $offset: Int, $limit: Int) {
  phJob(where: {id: $id}) {
    id
    logs(offset: $offset, limit: $limit) { offset lines totalLines hasMore live source }
  }
}
"""

CLEANUP = "mutation Cleanup($rescan: Boolean) { cleanupPhJobArtifact(rescan: $rescan) }"

CLEANUP_RUN = """
query CleanupRun($id: ID!) {
  phJobArtifactCleanup(id: $id) {
    id state enqueuedAt error
    result {
      outcome note dryRun startedAt finishedAt durationSeconds
      foldersScanned foldersExpired foldersDeleted foldersSkipped foldersFailed
      objectsDeleted bytesFreed deleted
      indexDue indexChecked indexStale rescanned lastRescanAt rescanFound
      skipped { prefix reason detail }
      errors { prefix message }
    }
  }
}
"""

_RETENTION = "retention { expiredAt state changedBy changedAt reason }"

RETENTION = f"""
query Retention($id: ID!) {{
  phJob(where: {{id: $id}}) {{ id artifact {{ {_RETENTION} }} }}
}}
"""

SET_EXPIRY = f"""
mutation SetExpiry($id: ID!, $expiredAt: String) {{
  setPhJobArtifactExpiry(where: {{id: $id}}, expiredAt: $expiredAt) {{ {_RETENTION} }}
}}
"""

DELETE_ARTIFACTS = """
mutation DeleteArtifacts($id: ID!) { deletePhJobArtifact(where: {id: $id}) }
"""
