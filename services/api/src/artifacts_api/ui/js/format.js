// How sizes, times and names read on the page. Pure functions, no DOM.

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** 6 -> "6 B", 1536 -> "1.5 KiB", 10 * 2**20 -> "10 MiB". Exact bytes go in a title. */
export function formatBytes(bytes) {
  if (!Number.isFinite(bytes) || bytes < 0) return "?";
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${value} B`;
  const shown = value < 10 ? value.toFixed(1).replace(/\.0$/, "") : Math.round(value).toString();
  return `${shown} ${UNITS[unit]}`;
}

export function exactBytes(bytes) {
  return `${Number(bytes).toLocaleString("en-US")} ${bytes === 1 ? "byte" : "bytes"}`;
}

export function plural(count, one, many) {
  return `${count.toLocaleString("en-US")} ${count === 1 ? one : many}`;
}

export function parseTime(iso) {
  if (!iso) return null;
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? null : moment;
}

const DATE_TIME = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const DATE_TIME_SECONDS = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium",
  timeStyle: "medium",
});

/** A moment as the reader's locale writes it, in the reader's time zone. */
export function formatTime(moment, { seconds = false } = {}) {
  if (!moment) return "—";
  return (seconds ? DATE_TIME_SECONDS : DATE_TIME).format(moment);
}

const RELATIVE = new Intl.RelativeTimeFormat("en", { numeric: "auto" });

/**
 * "in 6 days", "3 hours ago", "in 5 minutes". Whole units, rounded toward now, so a
 * retention of 7 days read a minute after the job ended says "in 6 days": it has not got
 * 7 whole days left.
 */
export function relativeTime(moment, now = new Date()) {
  const seconds = (moment.getTime() - now.getTime()) / 1000;
  const abs = Math.abs(seconds);
  const steps = [
    [2 * 86400, 86400, "day"],
    [2 * 3600, 3600, "hour"],
    [2 * 60, 60, "minute"],
    [0, 1, "second"],
  ];
  for (const [from, size, unit] of steps) {
    if (abs >= from) {
      const whole = Math.trunc(seconds / size);
      return RELATIVE.format(whole === 0 ? 0 : whole, unit);
    }
  }
  return RELATIVE.format(0, "second");
}

/** "1 h 2 min", "12 s": how long between two moments. */
export function duration(from, to) {
  if (!from || !to) return "—";
  let seconds = Math.max(0, Math.round((to.getTime() - from.getTime()) / 1000));
  const days = Math.floor(seconds / 86400);
  seconds -= days * 86400;
  const hours = Math.floor(seconds / 3600);
  seconds -= hours * 3600;
  const minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  const parts = [];
  if (days) parts.push(`${days} d`);
  if (hours) parts.push(`${hours} h`);
  if (minutes && !days) parts.push(`${minutes} min`);
  if (!days && !hours) parts.push(`${seconds} s`);
  return parts.join(" ");
}

/** "7 days", "1 day", "2 hours", "90 seconds": a retention as people say it. */
export function spanInWords(seconds) {
  if (seconds % 86400 === 0) return plural(seconds / 86400, "day", "days");
  if (seconds % 3600 === 0) return plural(seconds / 3600, "hour", "hours");
  if (seconds % 60 === 0) return plural(seconds / 60, "minute", "minutes");
  return plural(seconds, "second", "seconds");
}

/** An instance type as the job page shows it: its name, then its resources. */
export function instanceTypeText(preset) {
  const parts = [];
  if (preset.cpuLimit != null) parts.push(plural(preset.cpuLimit, "CPU", "CPUs"));
  if (preset.memoryLimit != null) parts.push(`${preset.memoryLimit} GB memory`);
  if (preset.gpuLimit) parts.push(plural(preset.gpuLimit, "GPU", "GPUs"));
  const name = preset.displayName ?? preset.name;
  return parts.length ? `${name} (${parts.join(", ")})` : name;
}

/**
 * A file name with its control characters made visible (a newline shows as ␊), so two
 * names that differ only by one never look alike and no name breaks the table's layout.
 */
export function visibleName(name) {
  return name.replace(/[\u0000-\u001f\u007f]/g, (char) => {
    const code = char.charCodeAt(0);
    return String.fromCharCode(code === 0x7f ? 0x2421 : 0x2400 + code);
  });
}

export const FINISHED_PHASES = new Set(["Succeeded", "Failed", "Cancelled"]);

export function isFinished(phase) {
  return FINISHED_PHASES.has(phase);
}
