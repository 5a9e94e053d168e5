#!/usr/bin/env bash
#
# run-job.sh: run a job's command, then hand its ./artifacts over (ARCHITECTURE section 4).
#
#   /scripts/run-job.sh '<the user's command line>'
#
# The one part of the collection that runs inside the user's image, with the job's own
# rights, so it needs only bash (4.3+) and coreutils and does only what must happen there:
#  1. run the command with `bash -c` in the current directory (the job's home), in a
#     process group of its own; forward SIGTERM/SIGINT to it (SIGKILL after
#     PHJOB_KILL_AFTER_SECONDS); exit with its exit code whatever happens next;
#  2. copy the files of ./artifacts (a folder or a link to one): links inside it are
#     copied as what they point to, links out of it skipped, hidden files kept, names
#     kept byte for byte. Where to:
#     phfs  $PHJOB_PHFS_ROOT/jobArtifacts/$PHJOB_NAME/, within the limits, then
#           .primehub/metadata/manifest.json, then expiredAt. The group's PHFS folder is
#           the job's to write (as in PrimeHub), so this mode is the job's own doing.
#     s3    $PHJOB_ARTIFACT_STAGING/files/, the permission bits in `modes`, then `done`
#           (the exit code). That is all the job's side says: the uploader takes limits,
#           expiry and the file list from its own side (staging.py has the contract).
# Every decision is one line on stderr starting with "artifacts:".
#
# Environment (PrimeHub's names; defaults in brackets):
#   PHJOB_NAME, GROUP_NAME                 the job and its group (phfs mode)
#   PHJOB_ARTIFACT_ENABLED [true]          false collects nothing
#   PHJOB_ARTIFACT_LIMIT_SIZE_MB [100]     phfs mode: more MiB than this copies nothing
#   PHJOB_ARTIFACT_LIMIT_FILES [1000]      phfs mode: more files than this copies nothing
#   PHJOB_ARTIFACT_RETENTION_SECONDS [604800]  phfs mode: expiredAt = end + this; 0: none
#   PHJOB_ARTIFACT_DELIVERY [phfs]         phfs or s3
#   PHJOB_PHFS_ROOT [/phfs]                the group's PHFS folder (phfs mode)
#   PHJOB_ARTIFACT_STAGING                 the folder the uploader reads (s3 mode)
#   PHJOB_KILL_AFTER_SECONDS [20]          0 waits for a signalled command however long

say() { printf '%s\n' "$*" >&2; }
log() { say "artifacts: $*"; }
# quoted TEXT: TEXT fit for one log line, $'...'-quoted if it holds control characters.
quoted() { if [[ $1 == *[$'\x01'-$'\x1f\x7f']* ]]; then printf '%q' "$1"; else printf '%s' "$1"; fi; }

# setting VAR NAME DEFAULT MIN MAX: VAR is $NAME if it is a whole number in range, else
# DEFAULT (with a log line). Checked before any arithmetic: bash would evaluate an
# expression found in a variable, and read "010" as octal.
setting() {
  local -n var=$1
  local value=${!2-}
  var=$3
  [[ -z $value ]] && return
  if [[ $value =~ ^[0-9]{1,15}$ ]] && ((10#$value >= $4 && 10#$value <= $5)); then
    var=$((10#$value))
  else
    log "$2='$(quoted "$value")' is not a whole number from $4 to $5; using $3"
  fi
}

# ---------------------------------------------------------------- running the command

CHILD='' PENDING_SIGNAL='' INTERRUPTED=0 WATCHDOG=''

on_signal() {
  INTERRUPTED=1
  if [[ -z $CHILD ]]; then PENDING_SIGNAL=$1 && return; fi
  say "run-job: forwarding SIG$1 to the command"
  kill -s "$1" -- "-$CHILD" 2>/dev/null
  # Kubernetes kills the container at the end of the grace period: the command gets
  # KILL_AFTER seconds, so that the collection still happens before that.
  if [[ -z $WATCHDOG ]] && ((KILL_AFTER > 0)); then
    (
      sleep "$KILL_AFTER" 2>/dev/null # an orphaned sleep must not hold stderr open
      say "run-job: the command is still running ${KILL_AFTER} s after the signal; sending SIGKILL"
      kill -s KILL -- "-$CHILD" 2>/dev/null
    ) </dev/null >/dev/null &
    WATCHDOG=$!
  fi
}

# run_command ARGS...: sets EXIT_CODE and ENDED_AT.
run_command() {
  # Job control gives the command a process group of its own (its pid), so signals can
  # reach all its processes, and keeps SIGINT from being ignored in a background job.
  set -m
  if (($# == 1)); then bash -c "$1" & else bash -c 'exec "$@"' run-job.sh "$@" & fi
  CHILD=$!
  set +m
  [[ -n $PENDING_SIGNAL ]] && on_signal "$PENDING_SIGNAL"
  local last=''
  while :; do
    INTERRUPTED=0
    wait "$CHILD"
    EXIT_CODE=$?
    # A trapped signal makes `wait` return early (status > 128) while the command runs
    # on: wait again. 127 then means the previous wait already collected the status.
    if ((EXIT_CODE == 127)) && [[ -n $last ]]; then EXIT_CODE=$last && break; fi
    ((INTERRUPTED && EXIT_CODE > 128)) || break
    last=$EXIT_CODE
  done
  printf -v ENDED_AT '%(%s)T' -1
  if [[ -n $WATCHDOG ]]; then kill "$WATCHDOG" 2>/dev/null && wait "$WATCHDOG" 2>/dev/null; fi
  # From here on a signal must not stop the collection; Kubernetes follows up with SIGKILL.
  trap 'say "run-job: received SIGTERM while collecting the artifacts; finishing first"' TERM
  trap 'say "run-job: received SIGINT while collecting the artifacts; finishing first"' INT
  if ((EXIT_CODE > 128 && EXIT_CODE < 160)); then
    say "run-job: the command ended by signal $((EXIT_CODE - 128)) (exit code $EXIT_CODE)"
  else
    say "run-job: the command exited with code $EXIT_CODE"
  fi
}

# ---------------------------------------------------------------- finding and copying

# The UTF-8 byte sequences (RFC 3629), matched in the C locale: a name that is not UTF-8
# cannot become an object key, nor a string in the manifest.
UTF8=$'^([\x01-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2})*$'

FILES=()              # the files to copy, by relative path, each folder's together
declare -A WALKING=() # real paths of the folders being walked: a link back to one loops

# walk DIR PREFIX: add the files under DIR (a real path) to FILES, as PREFIX<name>.
walk() {
  local dir=$1 prefix=$2 entry name rel target i
  local -a folders=() # pairs: real path, relative path
  if [[ ! -r $dir || ! -x $dir ]]; then
    log "skipped folder $(quoted "${prefix:-./}"): cannot read it" && return
  fi
  WALKING[$dir]=1
  for entry in "$dir"/*; do
    name=${entry##*/} rel=$prefix$name
    if [[ -z $prefix && ($name == .primehub || $name == .metadata) ]]; then
      log "skipped $name: the name is reserved for the job's metadata"
    elif [[ $name == *[$'\x80'-$'\xff']* && ! $name =~ $UTF8 ]]; then
      log "skipped $(quoted "$rel"): the name is not UTF-8, so it cannot become an object key"
    elif [[ -L $entry ]]; then
      if ! target=$(realpath -e -- "$entry" 2>&1); then
        [[ $target == *'Too many levels'* ]] && target='it loops' ||
          target='what it points to does not exist'
        log "skipped link $(quoted "$rel"): $target"
      elif [[ $target != "$ROOT" && $target != "$ROOT"/* ]]; then
        log "skipped link $(quoted "$rel"): it points outside the artifacts folder, to $(quoted "$target")"
      elif [[ -d $target && -n ${WALKING[$target]-} ]]; then
        log "skipped link $(quoted "$rel"): it loops back to a folder that contains it"
      elif [[ -d $target ]]; then
        folders+=("$target" "$rel/")
      elif [[ -f $target ]]; then
        FILES+=("$rel")
      else
        log "skipped link $(quoted "$rel"): it points to something that is not a file or a folder"
      fi
    elif [[ -d $entry ]]; then
      folders+=("$entry" "$rel/")
    elif [[ -f $entry ]]; then
      FILES+=("$rel")
    else
      log "skipped $(quoted "$rel"): not a regular file (a pipe, socket or device)"
    fi
  done
  for ((i = 0; i < ${#folders[@]}; i += 2)); do walk "${folders[i]}" "${folders[i + 1]}"; done
  unset 'WALKING[$dir]'
}

# copy_to DEST: copy each file of FILES from ./artifacts to DEST/<its name>, one cp per
# folder of at most 256 files; what cannot be copied is logged and left out of FILES.
# The copy is read through ./artifacts, so links inside it resolve as the walk found them.
copy_to() {
  local dest=$1 i=0 j n=${#FILES[@]} folder rel error
  local -a batch copied=()
  while ((i < n)); do
    folder=${FILES[i]%"${FILES[i]##*/}"}
    for ((j = i + 1; j < n && j < i + 256; j++)); do
      [[ ${FILES[j]%"${FILES[j]##*/}"} == "$folder" ]] || break
    done
    batch=("${FILES[@]:i:j-i}")
    if mkdir -p -- "$dest/$folder" 2>/dev/null && cp -Lf --preserve=mode -t "$dest/$folder" \
      -- "${batch[@]/#/"$ROOT/"}" 2>/dev/null; then
      copied+=("${batch[@]}")
    else
      for rel in "${batch[@]}"; do # one of them failed: learn which
        if error=$(cp -Lf --preserve=mode -- "$ROOT/$rel" "$dest/$rel" 2>&1); then
          copied+=("$rel")
        else
          log "skipped $(quoted "$rel"): could not copy it (${error//$'\n'/; })"
        fi
      done
    fi
    i=$j
  done
  FILES=("${copied[@]}")
}

# find_root DEST: ROOT is the real path of ./artifacts, if it is a folder to copy to DEST.
find_root() {
  local dest
  if [[ -L artifacts && ! -e artifacts ]]; then
    log "none: ./artifacts is a link to $(quoted "$(readlink -- artifacts)"), which does not exist"
  elif [[ ! -e artifacts ]]; then
    log "none: there is no ./artifacts folder"
  elif [[ ! -d artifacts ]]; then
    log "not collected: ./artifacts is not a folder"
  elif ! ROOT=$(realpath -e -- artifacts); then
    log "not collected: cannot resolve ./artifacts"
  else
    dest=$(realpath -m -- "$1")
    if [[ $ROOT == / || $dest == "$ROOT" || $dest == "$ROOT"/* || $ROOT == "$dest"/* ]]; then
      log "not collected: ./artifacts ($(quoted "$ROOT")) overlaps the destination $1"
    else
      return 0
    fi
  fi
  return 1
}

# each_batch DIR COMMAND...: run COMMAND <names> in DIR for the FILES, 256 names at a time
# (few processes, far below the argument limit).
each_batch() {
  local dir=$1 i
  shift
  for ((i = 0; i < ${#FILES[@]}; i += 256)); do (cd -- "$dir" && "$@" "${FILES[@]:i:256}"); done
}

# plural N: "1 file" or "N files".
plural() { if (($1 == 1)); then echo "1 file"; else echo "$1 files"; fi; }

# ---------------------------------------------------------------- phfs mode

# json VAR TEXT: VAR is TEXT as a JSON string; bytes from 0x80 pass through (names are UTF-8).
json() {
  local -n json_out=$1
  local text=${2//\\/\\\\} char code
  text=${text//\"/\\\"}
  while [[ $text =~ [$'\x01'-$'\x1f'] ]]; do
    char=${BASH_REMATCH[0]}
    printf -v code '\\u%04x' "'$char"
    text=${text//"$char"/$code}
  done
  json_out="\"$text\""
}

# describe_copies: ENTRIES is the manifest's "files" entries for the copies in DEST and
# TOTAL their bytes. The copies are what is delivered: a process the command left running
# may still be writing to the originals. Fails if a copy went away meanwhile. A mode is
# the copy's permission bits alone: setuid, setgid and sticky are never recorded.
describe_copies() {
  local i j name mode
  local -a batch stats sums
  ENTRIES='' TOTAL=0
  for ((i = 0; i < ${#FILES[@]}; i += 256)); do
    batch=("${FILES[@]:i:256}")
    mapfile -t stats < <(cd -- "$DEST" && stat --printf '%s %a\n' -- "${batch[@]}")
    mapfile -t sums < <(cd -- "$DEST" && sha256sum -- "${batch[@]}") # "\<hash>" if escaped
    ((${#stats[@]} == ${#batch[@]} && ${#sums[@]} == ${#batch[@]})) || return 1
    for ((j = 0; j < ${#batch[@]}; j++)); do
      json name "${batch[j]}"
      sums[j]=${sums[j]#\\}
      printf -v mode '%03o' $((8#${stats[j]#* } & 8#777))
      ENTRIES+="${ENTRIES:+,}{\"name\":$name,\"size\":${stats[j]% *},\"mode\":\"$mode\",\"sha256\":\"${sums[j]:0:64}\"}"
      TOTAL=$((TOTAL + ${stats[j]% *}))
    done
  done
}

# write_metadata COUNT SKIP_REASON: manifest.json for ENTRIES (renamed into place; the
# fields of artifacts_shared/manifest.py), then expiredAt: last, and only with a retention.
write_metadata() {
  local dir=$DEST/.primehub/metadata expired=null skipped=true job group
  ((RETENTION > 0)) && expired=$((ENDED_AT + RETENTION))
  [[ $2 == null ]] && skipped=false
  json job "$JOB" && json group "$GROUP"
  mkdir -p -- "$dir" &&
    printf '{"version":1,"job":%s,"group":%s,"collectedAt":"%s","expiredAt":%s,"exitCode":%s,"fileCount":%s,"totalSize":%s,"limits":{"sizeMb":%s,"files":%s},"skipped":%s,"skipReason":%s,"files":[%s]}\n' \
      "$job" "$group" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$expired" "$EXIT_CODE" "$1" "$TOTAL" \
      "$LIMIT_SIZE_MB" "$LIMIT_FILES" "$skipped" "$2" "$ENTRIES" >"$dir/.manifest.json.tmp" &&
    mv -fT -- "$dir/.manifest.json.tmp" "$dir/manifest.json" || return
  ((RETENTION > 0)) || return 0
  printf '%s' "$expired" >"$dir/.expiredAt.tmp" && mv -fT -- "$dir/.expiredAt.tmp" "$dir/expiredAt"
}

# skipped LIMIT FOUND ALLOWED TEXT: nothing is kept; the manifest says why.
skipped() {
  local line="artifacts: skipped, $4" message
  say "$line"
  json message "$line"
  ENTRIES='' TOTAL=0
  write_metadata 0 "{\"limit\":\"$1\",\"found\":$2,\"allowed\":$3,\"message\":$message}" ||
    log "could not write the manifest and expiredAt in $DEST/.primehub/metadata"
}

# size_text BYTES: "12 B", or "157286400 B (150.0 MB)" from one MiB, the MB rounded up so
# a size just over a limit never reads as equal to it.
size_text() {
  local tenths=$((($1 * 10 + 1048575) / 1048576))
  if (($1 < 1048576)); then echo "$1 B"; else echo "$1 B ($((tenths / 10)).$((tenths % 10)) MB)"; fi
}

collect_phfs() {
  JOB=${PHJOB_NAME-} GROUP=${GROUP_NAME-}
  local total=0 size limit=$((LIMIT_SIZE_MB * 1048576))
  if [[ -z $JOB ]]; then
    log "not collected: PHJOB_NAME is not set" && return
  elif [[ $JOB == . || $JOB == .. || $JOB == */* || $JOB == *\\* || ${#JOB} -gt 253 ||
    $JOB == *[$'\x01'-$'\x1f\x7f']* || $JOB != "${JOB#[[:space:]]}" ||
    $JOB != "${JOB%[[:space:]]}" || ! $JOB =~ $UTF8 ]]; then
    log "not collected: PHJOB_NAME='$(quoted "$JOB")' is not a plain folder name" && return
  elif [[ ! -d $PHFS_ROOT ]]; then
    log "not collected: the PHFS folder $PHFS_ROOT does not exist" && return
  fi
  DEST=$PHFS_ROOT/jobArtifacts/$JOB
  find_root "$DEST" || return
  walk "$ROOT" ''
  if ((${#FILES[@]} > LIMIT_FILES)); then
    skipped files ${#FILES[@]} "$LIMIT_FILES" \
      "${#FILES[@]} files exceed the limit of $LIMIT_FILES; nothing copied"
    return
  fi
  ((${#FILES[@]} > 0)) || { log "none: ./artifacts holds no files" && return; }
  for size in $(each_batch "$ROOT" stat -L --printf '%s\n' -- 2>/dev/null); do
    total=$((total + size))
  done
  if ((total > limit)); then
    skipped size "$total" "$limit" \
      "$(size_text "$total") exceed the limit of $LIMIT_SIZE_MB MB; nothing copied"
    return
  fi
  # No expiredAt may stand beside a partial copy (a retried collection).
  rm -f -- "$DEST/.primehub/metadata/expiredAt"
  copy_to "$DEST"
  if ((${#FILES[@]} == 0)); then
    log "none: no file could be copied"
  elif ! describe_copies; then
    log "copied $(plural ${#FILES[@]}) to $DEST, but a copy went away before the manifest was written"
  elif ((TOTAL > limit)); then # a file grew while it was copied: keep nothing
    each_batch "$DEST" rm -f --
    skipped size "$TOTAL" "$limit" \
      "$(size_text "$TOTAL") were copied, over the limit of $LIMIT_SIZE_MB MB; nothing kept"
  elif write_metadata ${#FILES[@]} null; then
    log "$(plural ${#FILES[@]}), $(size_text "$TOTAL") copied to $DEST"
  else
    log "copied $(plural ${#FILES[@]}) to $DEST but could not write the manifest and expiredAt"
  fi
}

# ---------------------------------------------------------------- s3 mode

collect_s3() {
  local files=$STAGING/files
  if [[ -z $STAGING ]]; then
    log "not collected: PHJOB_ARTIFACT_STAGING is not set (s3 delivery)" && return
  elif ! rm -rf -- "$files" "$STAGING/modes" || ! mkdir -p -- "$files"; then
    log "not collected: cannot prepare the staging folder $STAGING" && return
  fi
  if ((ENABLED)) && find_root "$files"; then
    walk "$ROOT" ''
    copy_to "$files"
    # The permission bits the copies lose when any user may read them (the uploader may
    # be another user): "<octal mode> <name>\0" per file.
    each_batch "$ROOT" stat -L --printf '%a %n\0' -- >"$STAGING/modes" 2>/dev/null
    chmod -R a+rX -- "$files" 2>/dev/null
    if ((${#FILES[@]} > 0)); then
      log "$(plural ${#FILES[@]}) staged in $files for the uploader"
    else
      log "none: ./artifacts holds no files"
    fi
  fi
  # The last act, in every case: the copy is complete (the command's exit code in it),
  # through a fresh name each time, so nothing the job put in the way can block it.
  local marker
  marker=$(mktemp -- "$STAGING/.done.XXXXXX") && printf '%s\n' "$EXIT_CODE" >"$marker" &&
    chmod a+r -- "$marker" && mv -fT -- "$marker" "$STAGING/done" ||
    log "could not write $STAGING/done; the uploader will not upload"
}

# ---------------------------------------------------------------- main

trap 'on_signal TERM' TERM # from the start: a signal before the command runs is passed on
trap 'on_signal INT' INT
(($# > 0)) || { say "usage: run-job.sh '<command>'" && exit 2; }
case ${PHJOB_ARTIFACT_ENABLED,,} in
  false | 0 | no | off) ENABLED=0 ;;
  '' | true | 1 | yes | on) ENABLED=1 ;;
  *) ENABLED=1 && log "PHJOB_ARTIFACT_ENABLED='$(quoted "$PHJOB_ARTIFACT_ENABLED")' is not true or false; using true" ;;
esac
setting LIMIT_SIZE_MB PHJOB_ARTIFACT_LIMIT_SIZE_MB 100 1 10000000
setting LIMIT_FILES PHJOB_ARTIFACT_LIMIT_FILES 1000 1 100000000
setting RETENTION PHJOB_ARTIFACT_RETENTION_SECONDS 604800 0 3153600000
setting KILL_AFTER PHJOB_KILL_AFTER_SECONDS 20 0 86400
DELIVERY=${PHJOB_ARTIFACT_DELIVERY:-phfs} PHFS_ROOT=${PHJOB_PHFS_ROOT:-/phfs}
STAGING=${PHJOB_ARTIFACT_STAGING-}
# A marker left by an earlier run of this container must not start an upload.
[[ ${DELIVERY,,} == s3 && -n $STAGING ]] && rm -f -- "$STAGING/done" 2>/dev/null

run_command "$@"
export LC_ALL=C # names are bytes from here on; patterns and ranges are byte-wise
shopt -s dotglob nullglob
((ENABLED)) ||
  log "disabled (PHJOB_ARTIFACT_ENABLED=$(quoted "$PHJOB_ARTIFACT_ENABLED")); nothing collected"
case ${DELIVERY,,} in
  s3) collect_s3 ;; # in every case: the uploader waits for its done marker
  phfs) ((!ENABLED)) || collect_phfs ;;
  *) log "not collected: PHJOB_ARTIFACT_DELIVERY='$(quoted "$DELIVERY")' is neither phfs nor s3" ;;
esac
exit "$EXIT_CODE"
