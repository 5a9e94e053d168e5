#!/usr/bin/env bash
#
# run-job.sh: run a job's command, then collect ./artifacts (ARCHITECTURE section 4).
#
#   /scripts/run-job.sh '<the user's command line>'
#
# The command runs with `bash -c` in the current directory (the job's home) in a process
# group of its own, so a SIGTERM or SIGINT sent to this script (PID 1 of the container)
# reaches every process of the job. Several arguments are run as one argv, not re-parsed.
# Whatever ./artifacts holds when the command ends -- success, failure or termination --
# is collected, and the script exits with the command's exit code whatever happens to
# the collection. Every decision is one log line on stderr starting with "artifacts:".
#
# Environment (PrimeHub's names; defaults in brackets):
#   PHJOB_NAME                          the job; names the destination folder
#   GROUP_NAME                          the group; recorded in the manifest
#   PHJOB_ARTIFACT_ENABLED [true]       false collects nothing
#   PHJOB_ARTIFACT_LIMIT_SIZE_MB [100]  more bytes than this many MiB: copy nothing
#   PHJOB_ARTIFACT_LIMIT_FILES [1000]   more files than this: copy nothing
#   PHJOB_ARTIFACT_RETENTION_SECONDS [604800]  expiredAt = end + this; 0 keeps forever
#   PHJOB_ARTIFACT_DELIVERY [phfs]      phfs: copy into $PHJOB_PHFS_ROOT/jobArtifacts/<job>/
#                                       s3: copy into $PHJOB_ARTIFACT_STAGING for the uploader
#   PHJOB_PHFS_ROOT [/phfs]             the group's PHFS folder (phfs mode)
#   PHJOB_ARTIFACT_STAGING              the folder shared with the uploader (s3 mode)
#   PHJOB_KILL_AFTER_SECONDS [20]       after forwarding SIGTERM/SIGINT, SIGKILL the command
#                                       this long after, so collecting fits in the grace
#                                       period; 0 waits for the command however long it takes
#
# s3 mode staging layout (the uploader's contract; services/controller/README.md):
#   $PHJOB_ARTIFACT_STAGING/files/<relative path>  the copies, readable by any user
#   $PHJOB_ARTIFACT_STAGING/done                   JSON, renamed into place last
#
# Only bash (4.3+) and coreutils: user images vary. Names are handled as bytes (LC_ALL=C
# while collecting) and never re-split, so spaces, newlines, unicode and leading dashes
# survive; names that are not UTF-8 cannot become S3 keys and are skipped.

# ---------------------------------------------------------------- logging and formats

say() { printf '%s\n' "$*" >&2; }
log() { say "artifacts: $*"; }

# show NAME: REPLY is NAME fit for one log line: as is, or $'...'-quoted when it holds
# control characters (a newline in a name must not split a log line).
show() {
  if [[ $1 == *[$'\x01'-$'\x1f\x7f']* ]]; then printf -v REPLY '%q' "$1"; else REPLY=$1; fi
}

# json_str TEXT: REPLY is TEXT as a JSON string literal (RFC 8259 escapes; bytes >= 0x80
# pass through, the caller has checked they are UTF-8).
json_str() {
  local s=$1 i
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  if [[ $s == *[$'\x01'-$'\x1f']* ]]; then
    s=${s//$'\n'/\\n}
    s=${s//$'\t'/\\t}
    s=${s//$'\r'/\\r}
    for i in "${!CONTROL_CHARS[@]}"; do
      [[ $s == *"${CONTROL_CHARS[i]}"* ]] && s=${s//"${CONTROL_CHARS[i]}"/${CONTROL_ESCAPES[i]}}
    done
  fi
  REPLY="\"$s\""
}

CONTROL_CHARS=()
CONTROL_ESCAPES=()
for code in {1..31}; do
  printf -v hex '%02x' "$code"
  printf -v char "\\x$hex"
  CONTROL_CHARS+=("$char")
  CONTROL_ESCAPES+=("\\u00$hex")
done
unset code hex char

# The UTF-8 byte sequences (RFC 3629: no overlongs, no surrogates), matched in the C locale.
UTF8_RE=$'^([\x01-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf][\x80-\xbf]|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf][\x80-\xbf]|[\xf1-\xf3][\x80-\xbf][\x80-\xbf][\x80-\xbf]|\xf4[\x80-\x8f][\x80-\xbf][\x80-\xbf])*$'

is_utf8() {
  [[ $1 != *[$'\x80'-$'\xff']* ]] || [[ $1 =~ $UTF8_RE ]]
}

# size_text BYTES: REPLY is "12 B", or "157286400 B (150.0 MB)" from one MiB up; the MB
# figure is rounded up so a size just over a limit never reads as equal to it.
size_text() {
  local bytes=$1 tenths
  if ((bytes < 1048576)); then
    REPLY="$bytes B"
  else
    tenths=$(((bytes * 10 + 1048575) / 1048576))
    REPLY="$bytes B ($((tenths / 10)).$((tenths % 10)) MB)"
  fi
}

# count_text N: REPLY is "1 file" or "N files".
count_text() {
  if (($1 == 1)); then REPLY="1 file"; else REPLY="$1 files"; fi
}

# ---------------------------------------------------------------- settings

# int_setting NAME DEFAULT MIN MAX: REPLY is the variable's value if it is a whole number
# in range, else DEFAULT (with a log line). Checked before any arithmetic: bash would
# evaluate an expression found in a variable, and read "010" as octal.
int_setting() {
  local name=$1 default=$2 min=$3 max=$4 value=${!1-}
  REPLY=$default
  [[ -z $value ]] && return
  if [[ $value =~ ^[0-9]{1,15}$ ]] && ((10#$value >= min && 10#$value <= max)); then
    REPLY=$((10#$value))
    return
  fi
  show "$value"
  log "$name='$REPLY' is not a whole number from $min to $max; using $default"
  REPLY=$default
}

read_settings() {
  JOB=${PHJOB_NAME-}
  GROUP=${GROUP_NAME-}
  case ${PHJOB_ARTIFACT_ENABLED-true} in
    [Ff][Aa][Ll][Ss][Ee] | 0 | [Nn][Oo] | [Oo][Ff][Ff]) ENABLED=0 ;;
    '' | [Tt][Rr][Uu][Ee] | 1 | [Yy][Ee][Ss] | [Oo][Nn]) ENABLED=1 ;;
    *)
      show "$PHJOB_ARTIFACT_ENABLED"
      log "PHJOB_ARTIFACT_ENABLED='$REPLY' is not true or false; using true"
      ENABLED=1
      ;;
  esac
  int_setting PHJOB_ARTIFACT_LIMIT_SIZE_MB 100 1 10000000
  LIMIT_SIZE_MB=$REPLY
  int_setting PHJOB_ARTIFACT_LIMIT_FILES 1000 1 100000000
  LIMIT_FILES=$REPLY
  int_setting PHJOB_ARTIFACT_RETENTION_SECONDS 604800 0 3153600000
  RETENTION=$REPLY
  int_setting PHJOB_KILL_AFTER_SECONDS 20 0 86400
  KILL_AFTER=$REPLY
  LIMIT_BYTES=$((LIMIT_SIZE_MB * 1048576))
  DELIVERY=${PHJOB_ARTIFACT_DELIVERY:-phfs}
  DELIVERY=${DELIVERY,,}
  PHFS_ROOT=${PHJOB_PHFS_ROOT:-/phfs}
  STAGING=${PHJOB_ARTIFACT_STAGING-}
}

# ---------------------------------------------------------------- running the command

CHILD=''
PENDING_SIGNAL=''
INTERRUPTED=0
WATCHDOG=''

on_signal() {
  INTERRUPTED=1
  if [[ -z $CHILD ]]; then
    PENDING_SIGNAL=$1
    return
  fi
  say "run-job: forwarding SIG$1 to the command"
  kill -s "$1" -- "-$CHILD" 2>/dev/null
  start_watchdog
}

# After a forwarded signal, give the command KILL_AFTER seconds, then SIGKILL its process
# group: Kubernetes kills the whole container at the end of the grace period, and the
# collection must have happened by then.
start_watchdog() {
  [[ -n $WATCHDOG ]] && return
  ((KILL_AFTER > 0)) || return
  (
    sleep "$KILL_AFTER" </dev/null >/dev/null 2>&1
    say "run-job: the command is still running ${KILL_AFTER} s after the signal; sending SIGKILL"
    kill -s KILL -- "-$CHILD" 2>/dev/null
  ) </dev/null >/dev/null &
  WATCHDOG=$!
}

# run_command ARGS...: sets EXIT_CODE and ENDED_AT.
run_command() {
  # Job control gives the command a process group of its own (its pid), so signals can
  # reach all its processes, and keeps SIGINT from being ignored in a background job.
  set -m
  if (($# == 1)); then
    bash -c "$1" &
  else
    bash -c 'exec "$@"' run-job.sh "$@" &
  fi
  CHILD=$!
  set +m
  [[ -n $PENDING_SIGNAL ]] && on_signal "$PENDING_SIGNAL"

  local status last=''
  while :; do
    INTERRUPTED=0
    wait "$CHILD"
    status=$?
    # A trapped signal makes `wait` return early (status > 128) while the command runs
    # on: wait again. 127 means the status was already collected by the previous wait.
    if ((status == 127)) && [[ -n $last ]]; then
      status=$last
    elif ((INTERRUPTED && status > 128)); then
      last=$status
      continue
    fi
    break
  done
  printf -v ENDED_AT '%(%s)T' -1
  EXIT_CODE=$status
  if [[ -n $WATCHDOG ]]; then
    kill "$WATCHDOG" 2>/dev/null
    wait "$WATCHDOG" 2>/dev/null
  fi
  # From here on a signal must not stop the collection; Kubernetes follows up with SIGKILL.
  trap 'say "run-job: received SIGTERM while collecting the artifacts; finishing first"' TERM
  trap 'say "run-job: received SIGINT while collecting the artifacts; finishing first"' INT
  if ((EXIT_CODE > 128 && EXIT_CODE < 160)); then
    say "run-job: the command ended by signal $((EXIT_CODE - 128)) (exit code $EXIT_CODE)"
  else
    say "run-job: the command exited with code $EXIT_CODE"
  fi
}

# ---------------------------------------------------------------- finding the files

# The walk fills these, one entry per file to collect, each folder's files together:
F_SRC=()  # the path to read (a link inside the folder is read through)
F_REL=()  # the path relative to ./artifacts, which the copy gets
F_PRE=()  # the folder part of F_REL ("" or ending in "/")
COUNT=0   # files found; the arrays stop growing past the file limit, the count does not
declare -A ON_STACK=()  # real paths of the folders being walked, to refuse links back up

add_file() {
  COUNT=$((COUNT + 1))
  ((COUNT > LIMIT_FILES)) && return
  F_SRC+=("$1")
  F_REL+=("$2")
  F_PRE+=("$3")
}

# walk REALDIR PREFIX: add the files under REALDIR (a real path, no links in it), whose
# relative names start with PREFIX. Hidden files are included (dotglob).
walk() {
  local dir=$1 prefix=$2 entry name rel target message i
  local -a subdirs=() subprefixes=()
  if [[ ! -r $dir || ! -x $dir ]]; then
    show "${prefix:-./}"
    log "skipped folder $REPLY: cannot read it"
    return
  fi
  ON_STACK[$dir]=1
  for entry in "$dir"/*; do
    name=${entry##*/}
    rel=$prefix$name
    show "$rel"
    if [[ -z $prefix && ($name == .primehub || $name == .metadata) ]]; then
      log "skipped $REPLY: the name is reserved for the job's metadata"
      continue
    fi
    if ! is_utf8 "$name"; then
      log "skipped $REPLY: the name is not UTF-8, so it cannot become an object key"
      continue
    fi
    if [[ -L $entry ]]; then
      if ! message=$(realpath -e -- "$entry" 2>&1); then
        if [[ $message == *'Too many levels of symbolic links'* ]]; then
          log "skipped link $REPLY: it loops"
        else
          log "skipped link $REPLY: what it points to does not exist"
        fi
        continue
      fi
      target=$message
      if [[ $target != "$ROOT" && $target != "$ROOT"/* ]]; then
        local shown_rel=$REPLY
        show "$target"
        log "skipped link $shown_rel: it points outside the artifacts folder, to $REPLY"
        continue
      fi
      if [[ -d $target ]]; then
        if [[ -n ${ON_STACK[$target]+set} ]]; then
          log "skipped link $REPLY: it loops back to a folder that contains it"
          continue
        fi
        subdirs+=("$target")
        subprefixes+=("$rel/")
      elif [[ -f $target ]]; then
        add_file "$entry" "$rel" "$prefix"
      else
        log "skipped link $REPLY: it points to something that is not a file or a folder"
      fi
    elif [[ -d $entry ]]; then
      subdirs+=("$entry")
      subprefixes+=("$rel/")
    elif [[ -f $entry ]]; then
      add_file "$entry" "$rel" "$prefix"
    else
      log "skipped $REPLY: not a regular file (a pipe, socket or device)"
    fi
  done
  for i in "${!subdirs[@]}"; do
    walk "${subdirs[i]}" "${subprefixes[i]}"
  done
  unset 'ON_STACK[$dir]'
}

# keep_files INDEX...: shrink the per-file arrays to those entries, in that order.
keep_files() {
  local -a src=() rel=() pre=() size=() mode=() sha=()
  local i
  for i in "$@"; do
    src+=("${F_SRC[i]}")
    rel+=("${F_REL[i]}")
    pre+=("${F_PRE[i]}")
    size+=("${F_SIZE[i]-}")
    mode+=("${F_MODE[i]-}")
    sha+=("${F_SHA[i]-}")
  done
  F_SRC=("${src[@]}")
  F_REL=("${rel[@]}")
  F_PRE=("${pre[@]}")
  F_SIZE=("${size[@]}")
  F_MODE=("${mode[@]}")
  F_SHA=("${sha[@]}")
}

BATCH=256 # files per stat/cp/sha256sum call: few processes, far below the argument limit

# stat_all FORMAT PATH...: STATS[i] is `stat --printf FORMAT` of PATH i (one line, links
# followed), or "gone" when it cannot be read.
stat_all() {
  local format=$1 i j n line
  shift
  local -a paths=("$@") lines
  n=${#paths[@]}
  STATS=()
  for ((i = 0; i < n; i += BATCH)); do
    mapfile -t lines < <(stat -L --printf "$format\n" -- "${paths[@]:i:BATCH}" 2>/dev/null)
    if ((${#lines[@]} != (n - i < BATCH ? n - i : BATCH))); then
      lines=() # one failed and left no line: ask file by file to learn which
      for ((j = i; j < n && j < i + BATCH; j++)); do
        line=$(stat -L --printf "$format" -- "${paths[j]}" 2>/dev/null) || line='gone'
        lines+=("$line")
      done
    fi
    STATS+=("${lines[@]}")
  done
}

# measure_files: F_SIZE, F_MODE and TOTAL of the originals, for the limits; files gone
# since the walk are dropped.
measure_files() {
  local i
  local -a keep=()
  stat_all '%s %a' "${F_SRC[@]}"
  F_SIZE=()
  F_MODE=()
  TOTAL=0
  for i in "${!F_SRC[@]}"; do
    if [[ ${STATS[i]} == gone ]]; then
      show "${F_REL[i]}"
      log "skipped $REPLY: it disappeared before it could be copied"
      continue
    fi
    F_SIZE[i]=${STATS[i]%% *}
    F_MODE[i]=${STATS[i]##* }
    TOTAL=$((TOTAL + F_SIZE[i]))
    keep+=("$i")
  done
  ((${#keep[@]} == ${#F_SRC[@]})) || keep_files "${keep[@]}"
}

# measure_copies DEST: F_SIZE and TOTAL of the copies, which is what gets delivered (a
# process the job left running may still have been writing to the original).
measure_copies() {
  local dest=$1 i
  local -a paths=() keep=()
  for i in "${!F_REL[@]}"; do paths+=("$dest/${F_REL[i]}"); done
  stat_all '%s' "${paths[@]}"
  TOTAL=0
  for i in "${!F_REL[@]}"; do
    if [[ ${STATS[i]} == gone ]]; then
      show "${F_REL[i]}"
      log "skipped $REPLY: its copy cannot be read"
      continue
    fi
    F_SIZE[i]=${STATS[i]}
    TOTAL=$((TOTAL + F_SIZE[i]))
    keep+=("$i")
  done
  ((${#keep[@]} == ${#F_REL[@]})) || keep_files "${keep[@]}"
}

# copy_files DEST CP-OPTION...: copy every file to DEST/<relative path>, one cp per folder
# (at most BATCH files); files cp could not copy are logged and dropped.
copy_files() {
  local dest=$1 n=${#F_SRC[@]} i=0 j k pre error
  shift
  local -a options=("$@") keep=()
  while ((i < n)); do
    pre=${F_PRE[i]}
    for ((j = i; j < n && j < i + BATCH; j++)); do
      [[ ${F_PRE[j]} == "$pre" ]] || break
    done
    if mkdir -p -- "$dest/$pre" 2>/dev/null &&
      cp "${options[@]}" -t "$dest/$pre" -- "${F_SRC[@]:i:j-i}" 2>/dev/null; then
      for ((k = i; k < j; k++)); do keep+=("$k"); done
    else
      for ((k = i; k < j; k++)); do
        if error=$({ mkdir -p -- "$dest/$pre" && cp "${options[@]}" -t "$dest/$pre" -- "${F_SRC[k]}"; } 2>&1); then
          keep+=("$k")
        else
          show "${F_REL[k]}"
          log "skipped $REPLY: could not copy it (${error//$'\n'/; })"
        fi
      done
    fi
    i=$j
  done
  ((${#keep[@]} == n)) || keep_files "${keep[@]}"
}

# hash_files DEST: F_SHA of each copy under DEST, with sha256sum; a copy that cannot be
# read is removed and dropped, so the folder holds exactly what the manifest lists.
hash_files() {
  local dest=$1 n=${#F_REL[@]} i j line
  local -a paths lines keep=()
  F_SHA=()
  for ((i = 0; i < n; i += BATCH)); do
    paths=()
    for ((j = i; j < n && j < i + BATCH; j++)); do paths+=("$dest/${F_REL[j]}"); done
    # One line a file; a name with a newline or backslash is escaped and its line starts
    # with a backslash, so the hash is the first 64 characters after that.
    mapfile -t lines < <(sha256sum -- "${paths[@]}" 2>/dev/null)
    # A file sha256sum could not read leaves no line: then ask file by file.
    ((${#lines[@]} == ${#paths[@]})) || lines=()
    for ((j = 0; j < ${#paths[@]}; j++)); do
      line=${lines[j]-}
      line=${line#\\}
      line=${line:0:64}
      if ! [[ $line =~ ^[0-9a-f]{64}$ ]]; then
        line=$(sha256sum <"${paths[j]}" 2>/dev/null)
        line=${line:0:64}
      fi
      if [[ $line =~ ^[0-9a-f]{64}$ ]]; then
        F_SHA[i + j]=$line
        keep+=("$((i + j))")
      else
        show "${F_REL[i + j]}"
        log "skipped $REPLY: its copy cannot be read back to hash it"
        rm -f -- "${paths[j]}"
      fi
    done
  done
  if ((${#keep[@]} != n)); then
    keep_files "${keep[@]}"
    TOTAL=0
    for i in "${!F_SIZE[@]}"; do TOTAL=$((TOTAL + F_SIZE[i])); done
  fi
}

# ---------------------------------------------------------------- writing the records

# limits_json / files_json: pieces of the manifest and of the done marker.
limits_json() {
  REPLY="{\"sizeMb\":$LIMIT_SIZE_MB,\"files\":$LIMIT_FILES}"
}

# write_files_json WITH_SHA: print the "files" array, one object a line.
write_files_json() {
  local with_sha=$1 i sep=''
  printf '['
  for ((i = 0; i < ${#F_REL[@]}; i++)); do
    json_str "${F_REL[i]}"
    printf '%s\n{"name":%s,"size":%s' "$sep" "$REPLY" "${F_SIZE[i]}"
    ((with_sha)) && printf ',"sha256":"%s"' "${F_SHA[i]}"
    printf ',"mode":"%s"}' "${F_MODE[i]}"
    sep=','
  done
  printf ']'
}

# write_atomically PATH: stdin goes to PATH.tmp, renamed onto PATH when complete, so a
# reader sees the whole document or none.
write_atomically() {
  cat >"$1.tmp" && mv -f -- "$1.tmp" "$1"
}

# write_manifest DIR SKIP_JSON: DIR/manifest.json for the files in the arrays, then
# DIR/expiredAt (last, and only with a retention).
write_metadata() {
  local dir=$1 skip=$2 collected expired='null' skipped=false
  collected=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  ((RETENTION > 0)) && expired=$((ENDED_AT + RETENTION))
  [[ $skip != null ]] && skipped=true
  json_str "$JOB"
  local job_json=$REPLY
  json_str "$GROUP"
  local group_json=$REPLY
  limits_json
  local limits=$REPLY
  mkdir -p -- "$dir" || return 1
  {
    printf '{"version":1,"job":%s,"group":%s,"collectedAt":"%s","expiredAt":%s,' \
      "$job_json" "$group_json" "$collected" "$expired"
    printf '"exitCode":%s,"fileCount":%s,"totalSize":%s,"limits":%s,"skipped":%s,' \
      "$EXIT_CODE" "${#F_REL[@]}" "$TOTAL" "$limits" "$skipped"
    printf '"skipReason":%s,"files":' "$skip"
    write_files_json 1
    printf '}\n'
  } | write_atomically "$dir/manifest.json" || return 1
  if ((RETENTION > 0)); then
    printf '%s' "$expired" | write_atomically "$dir/expiredAt" || return 1
  fi
}

# write_done OUTCOME MESSAGE SKIP_JSON: the marker the uploader waits for, written last.
write_done() {
  local outcome=$1 message=$2 skip=$3
  json_str "$message"
  local message_json=$REPLY
  json_str "$JOB"
  local job_json=$REPLY
  json_str "$GROUP"
  local group_json=$REPLY
  limits_json
  {
    printf '{"version":1,"outcome":"%s","message":%s,"job":%s,"group":%s,' \
      "$outcome" "$message_json" "$job_json" "$group_json"
    printf '"exitCode":%s,"endedAt":%s,"retentionSeconds":%s,"limits":%s,' \
      "$EXIT_CODE" "$ENDED_AT" "$RETENTION" "$REPLY"
    printf '"skipReason":%s,"fileCount":%s,"totalSize":%s,"files":' \
      "$skip" "${#F_REL[@]}" "${TOTAL:-0}"
    write_files_json 0
    printf '}\n'
  } | write_atomically "$STAGING/done"
}

# ---------------------------------------------------------------- collecting

# nothing MESSAGE: the collection ends without files; the uploader is told so (s3 mode).
nothing() {
  log "$1"
  F_REL=()
  TOTAL=0
  if [[ $DELIVERY == s3 && -n $STAGING && -d $STAGING ]]; then
    write_done none "artifacts: $1" null || log "could not write $STAGING/done"
  fi
}

# skip_for_limit LIMIT FOUND ALLOWED MESSAGE: copy nothing, record why.
skip_for_limit() {
  local limit=$1 found=$2 allowed=$3 line="artifacts: skipped, $4"
  say "$line"
  json_str "$line"
  local skip="{\"limit\":\"$limit\",\"found\":$found,\"allowed\":$allowed,\"message\":$REPLY}"
  F_REL=()
  TOTAL=0
  if [[ $DELIVERY == s3 ]]; then
    write_done skipped "$line" "$skip" || log "could not write $STAGING/done"
  else
    rm -f -- "$DEST/.primehub/metadata/expiredAt"
    write_metadata "$DEST/.primehub/metadata" "$skip" ||
      log "could not write the manifest and expiredAt in $DEST/.primehub/metadata"
  fi
}

# check_job_name: the rules of artifacts_shared.layout.check_job_name, so the destination
# folder is one plain folder name.
check_job_name() {
  show "$JOB"
  if [[ -z $JOB ]]; then
    nothing "not collected: PHJOB_NAME is not set"
  elif [[ $JOB == . || $JOB == .. || $JOB == */* || $JOB == *\\* ||
    $JOB == *[$'\x01'-$'\x1f\x7f']* || $JOB != "${JOB#[[:space:]]}" ||
    $JOB != "${JOB%[[:space:]]}" ]] || ((${#JOB} > 253)) || ! is_utf8 "$JOB"; then
    nothing "not collected: PHJOB_NAME='$REPLY' is not a plain folder name"
  else
    return 0
  fi
  return 1
}

# choose_destination: DEST for phfs mode, or a clean staging folder for s3 mode.
choose_destination() {
  case $DELIVERY in
    phfs)
      if [[ ! -d $PHFS_ROOT ]]; then
        nothing "not collected: the PHFS folder $PHFS_ROOT does not exist"
        return 1
      fi
      DEST=$PHFS_ROOT/jobArtifacts/$JOB
      ;;
    s3)
      if [[ -z $STAGING ]]; then
        nothing "not collected: PHJOB_ARTIFACT_STAGING is not set (s3 delivery)"
        return 1
      fi
      if ! mkdir -p -- "$STAGING" 2>/dev/null || ! rm -rf -- "$STAGING/files"; then
        STAGING='' # nowhere to put a done marker either
        nothing "not collected: cannot prepare the staging folder $PHJOB_ARTIFACT_STAGING"
        return 1
      fi
      DEST=$STAGING/files
      ;;
    *)
      show "$DELIVERY"
      nothing "not collected: PHJOB_ARTIFACT_DELIVERY='$REPLY' is neither phfs nor s3"
      return 1
      ;;
  esac
}

# find_root: ROOT is the real path of ./artifacts, when it is a folder to collect.
find_root() {
  local source=$HOME_DIR/artifacts dest_real
  if [[ -L $source && ! -e $source ]]; then
    show "$(readlink -- "$source")"
    nothing "none: ./artifacts is a link to $REPLY, which does not exist"
    return 1
  elif [[ ! -e $source ]]; then
    nothing "none: there is no ./artifacts folder"
    return 1
  elif [[ ! -d $source ]]; then
    nothing "not collected: ./artifacts is not a folder"
    return 1
  fi
  ROOT=$(realpath -e -- "$source") || {
    nothing "not collected: cannot resolve ./artifacts"
    return 1
  }
  dest_real=$(realpath -m -- "$DEST")
  if [[ $ROOT == / || $dest_real == "$ROOT" || $dest_real == "$ROOT"/* || $ROOT == "$dest_real"/* ]]; then
    show "$ROOT"
    nothing "not collected: ./artifacts ($REPLY) overlaps the destination $DEST"
    return 1
  fi
}

collect() {
  export LC_ALL=C # names are bytes; patterns and ranges below are byte-wise
  shopt -s dotglob nullglob
  shopt -u failglob
  if ((!ENABLED)); then
    show "$PHJOB_ARTIFACT_ENABLED"
    nothing "disabled (PHJOB_ARTIFACT_ENABLED=$REPLY); nothing collected"
    return
  fi
  check_job_name || return
  choose_destination || return
  find_root || return

  walk "$ROOT" ''
  if ((COUNT > LIMIT_FILES)); then
    skip_for_limit files "$COUNT" "$LIMIT_FILES" \
      "$COUNT files exceed the limit of $LIMIT_FILES; nothing copied"
    return
  fi
  if ((COUNT == 0)); then
    nothing "none: ./artifacts holds no files"
    return
  fi
  measure_files
  if ((TOTAL > LIMIT_BYTES)); then
    size_text "$TOTAL"
    skip_for_limit size "$TOTAL" "$LIMIT_BYTES" \
      "$REPLY exceed the limit of $LIMIT_SIZE_MB MB; nothing copied"
    return
  fi

  if [[ $DELIVERY == phfs ]]; then
    # No expiredAt may stand beside a partial copy (a retried collection).
    rm -f -- "$DEST/.primehub/metadata/expiredAt"
    copy_files "$DEST" -L -f
    measure_copies "$DEST"
    hash_files "$DEST"
    ((${#F_REL[@]} > 0)) || {
      nothing "none: no file could be copied"
      return
    }
    count_text "${#F_REL[@]}"
    local files=$REPLY
    if write_metadata "$DEST/.primehub/metadata" null; then
      size_text "$TOTAL"
      log "$files, $REPLY copied to $DEST"
    else
      log "copied $files to $DEST but could not write the manifest and expiredAt"
    fi
  else
    copy_files "$DEST" -L -f
    # The uploader may run as another user: let it read every copy.
    chmod -R a+rX -- "$DEST" 2>/dev/null
    measure_copies "$DEST"
    ((${#F_REL[@]} > 0)) || {
      nothing "none: no file could be copied"
      return
    }
    count_text "${#F_REL[@]}"
    local files=$REPLY
    size_text "$TOTAL"
    local line="artifacts: $files, $REPLY staged in $DEST for the uploader"
    if write_done collected "$line" null; then
      say "$line"
    else
      log "could not write $STAGING/done; the uploader will not upload"
    fi
  fi
}

main() {
  # Trapped from the start: a signal before the command runs is passed on once it does.
  trap 'on_signal TERM' TERM
  trap 'on_signal INT' INT
  if (($# == 0)); then
    say "usage: run-job.sh '<command>'"
    exit 2
  fi
  HOME_DIR=$(pwd -P)
  read_settings
  # Markers left by an earlier run of this container must not start (or stop) an upload.
  if [[ $DELIVERY == s3 && -n $STAGING ]]; then
    rm -f -- "$STAGING/done" "$STAGING/done.tmp" "$STAGING/uploaded" 2>/dev/null
  fi
  run_command "$@"
  collect
  exit "$EXIT_CODE"
}

main "$@"
