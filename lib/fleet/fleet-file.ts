/**
 * The fleet file (FLEET_FILE, e.g. fleet.yaml in the Git repository): which clusters one
 * deployment serves, how each is reached, where its manifests are, and the ordered waves a
 * commit is promoted through. Parsed and validated here; every problem is reported at once,
 * each naming the file, the field and the fix.
 *
 *   clusters:
 *     - name: staging                      # keys the cluster's state in S3
 *       eks: { name: staging-eks, region: eu-west-1, roleArn: arn:aws:iam::111122223333:role/dsgitops }
 *       path: clusters/staging             # default: the clusters/{cluster} convention
 *       labels: { env: staging }
 *   waves:
 *     - name: canary
 *       clusters: [staging]                # names, or
 *       selector: { env: prod }            # the clusters whose labels match
 *       soak: 30m                          # healthy this long before the next wave
 *       maxConcurrent: 1                   # clusters of the wave changed at once
 *       maintenanceWindows:                # a cluster inside one is skipped and re-queued
 *         - { start: 2026-12-24T00:00:00Z, end: 2026-12-27T00:00:00Z }
 *         - { weekly: { days: [sat, sun], from: "00:00", to: "23:59" } }
 */
import { parseDocument } from 'yaml';
import * as z from 'zod/mini';
import '../schema';
import { DsGitopsError } from '../errors';

export class FleetFileInvalidError extends DsGitopsError {
  constructor(readonly file: string, readonly problems: string[]) {
    super('FleetFileInvalid', `${file}: ${problems.length === 1 ? problems[0] : `${problems.length} problems:\n  ${problems.join('\n  ')}`}`);
  }
}

export interface FleetCluster {
  name: string;
  /** How to reach it on AWS; absent: the deployment's own KUBECONFIG / EKS_CLUSTER_NAME. */
  eks?: { clusterName: string; region: string; roleArn?: string };
  /** Where its manifests are in the repository. */
  path: string;
  labels: Record<string, string>;
}

export type Weekday = 'sun' | 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat';
export const WEEKDAYS: Weekday[] = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

/** A time in which a cluster is not changed: a fixed stretch, or a weekly one in UTC (which may cross midnight). */
export type MaintenanceWindow =
  | { start: Date; end: Date }
  | { weekly: { days: Weekday[]; fromMinute: number; toMinute: number } };

export interface Wave {
  name: string;
  /** The wave's clusters, in the file's order of clusters. */
  clusters: string[];
  soakSeconds: number;
  maxConcurrent: number;
  maintenanceWindows: MaintenanceWindow[];
}

export interface Fleet {
  file: string;
  clusters: FleetCluster[];
  waves: Wave[];
}

/** The manifests path of a cluster by convention, as GIT_PATH's `{cluster}` does. */
export const DEFAULT_CLUSTER_PATH = 'clusters/{cluster}';

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;
const REGION = /^[a-z]{2}(-[a-z]+)+-\d$/;
const EKS_NAME = /^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$/;
const HHMM = /^([01]\d|2[0-3]):([0-5]\d)$/;

const windowSchema = z.union([
  z.strictObject({ start: z.union([z.string(), z.date()]), end: z.union([z.string(), z.date()]) }),
  z.strictObject({ weekly: z.strictObject({ days: z.array(z.string()), from: z.string(), to: z.string() }) }),
]);

const fileSchema = z.strictObject({
  clusters: z.array(z.strictObject({
    name: z.string(),
    eks: z.optional(z.strictObject({ name: z.string(), region: z.string(), roleArn: z.optional(z.string()) })),
    path: z.optional(z.string()),
    labels: z.optional(z.record(z.string(), z.string())),
  })),
  waves: z.array(z.strictObject({
    name: z.string(),
    clusters: z.optional(z.array(z.string())),
    selector: z.optional(z.record(z.string(), z.string())),
    soak: z.optional(z.union([z.string(), z.number()])),
    maxConcurrent: z.optional(z.number()),
    maintenanceWindows: z.optional(z.array(windowSchema)),
  })),
});

/** `90`, `90s`, `15m`, `2h`, `1d` -> seconds; undefined when it is none of them. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : undefined;
  const m = /^(\d+)\s*(s|m|h|d)?$/.exec(value.trim());
  if (!m) return undefined;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
}

function pathOf(path: PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`)).join('') || '(top level)';
}

function minuteOfDay(hhmm: string): number | undefined {
  const m = HHMM.exec(hhmm);
  return m ? Number(m[1]) * 60 + Number(m[2]) : undefined;
}

function parseWindow(raw: z.infer<typeof windowSchema>, at: string, problems: string[]): MaintenanceWindow | undefined {
  if ('weekly' in raw) {
    const days = raw.weekly.days.map((d) => d.toLowerCase().slice(0, 3));
    const bad = raw.weekly.days.filter((_, i) => !WEEKDAYS.includes(days[i] as Weekday));
    if (bad.length) problems.push(`${at}.weekly.days: ${bad.join(', ')} is not a weekday (use mon, tue, wed, thu, fri, sat, sun)`);
    if (days.length === 0) problems.push(`${at}.weekly.days is empty: name the days the window is open`);
    const fromMinute = minuteOfDay(raw.weekly.from);
    const toMinute = minuteOfDay(raw.weekly.to);
    if (fromMinute === undefined) problems.push(`${at}.weekly.from=${raw.weekly.from} is not a time of day HH:MM (UTC)`);
    if (toMinute === undefined) problems.push(`${at}.weekly.to=${raw.weekly.to} is not a time of day HH:MM (UTC)`);
    if (bad.length || !days.length || fromMinute === undefined || toMinute === undefined) return undefined;
    return { weekly: { days: days as Weekday[], fromMinute, toMinute } };
  }
  const start = raw.start instanceof Date ? raw.start : new Date(raw.start);
  const end = raw.end instanceof Date ? raw.end : new Date(raw.end);
  if (Number.isNaN(start.getTime())) problems.push(`${at}.start=${String(raw.start)} is not a time (use ISO 8601, e.g. 2026-12-24T00:00:00Z)`);
  if (Number.isNaN(end.getTime())) problems.push(`${at}.end=${String(raw.end)} is not a time (use ISO 8601, e.g. 2026-12-27T00:00:00Z)`);
  if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime())) return undefined;
  if (end <= start) {
    problems.push(`${at}: end ${end.toISOString()} is not after start ${start.toISOString()}`);
    return undefined;
  }
  return { start, end };
}

/** Parses and validates a fleet file's text; throws FleetFileInvalidError listing every problem. */
export function parseFleetFile(text: string, file: string): Fleet {
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) throw new FleetFileInvalidError(file, doc.errors.map((e) => `YAML: ${e.message}`));
  const parsed = fileSchema.safeParse(doc.toJS({ maxAliasCount: 100 }) ?? {});
  if (!parsed.success) {
    throw new FleetFileInvalidError(file, parsed.error.issues.map((i) => `${pathOf(i.path)}: ${i.message}`));
  }
  const raw = parsed.data;
  const problems: string[] = [];
  if (raw.clusters.length === 0) problems.push('clusters is empty: list the clusters this deployment serves');
  if (raw.waves.length === 0) problems.push('waves is empty: list at least one wave of clusters');

  const clusters: FleetCluster[] = [];
  const names = new Set<string>();
  raw.clusters.forEach((c, i) => {
    const at = `clusters[${i}]`;
    if (!NAME.test(c.name)) problems.push(`${at}.name=${c.name} must be lower-case letters, digits and dashes (it keys the cluster's state in S3)`);
    if (names.has(c.name)) problems.push(`${at}.name=${c.name} is listed twice: cluster names must be unique`);
    names.add(c.name);
    let eks: FleetCluster['eks'];
    if (c.eks) {
      if (!EKS_NAME.test(c.eks.name)) problems.push(`${at}.eks.name=${c.eks.name} is not an EKS cluster name (letters, digits, - and _, up to 100)`);
      if (!REGION.test(c.eks.region)) problems.push(`${at}.eks.region=${c.eks.region} is not an AWS region (e.g. eu-west-1)`);
      if (c.eks.roleArn !== undefined && !ROLE_ARN.test(c.eks.roleArn)) problems.push(`${at}.eks.roleArn=${c.eks.roleArn} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)`);
      eks = { clusterName: c.eks.name, region: c.eks.region, ...(c.eks.roleArn ? { roleArn: c.eks.roleArn } : {}) };
    }
    const path = (c.path ?? DEFAULT_CLUSTER_PATH).replace(/\{cluster\}/g, c.name).replace(/\/+$/, '') || '.';
    if (path.startsWith('/') || path.split('/').includes('..')) problems.push(`${at}.path=${c.path} must be a relative path inside the repository (no leading / and no ..)`);
    for (const [k, v] of Object.entries(c.labels ?? {})) {
      if (!LABEL_VALUE.test(v) || v.length > 63) problems.push(`${at}.labels.${k}=${v} is not a label value (up to 63 letters, digits, -, _ and .)`);
    }
    clusters.push({ name: c.name, ...(eks ? { eks } : {}), path, labels: c.labels ?? {} });
  });

  const waves: Wave[] = [];
  const waveOf = new Map<string, string>();
  const waveNames = new Set<string>();
  raw.waves.forEach((w, i) => {
    const at = `waves[${i}]`;
    if (!NAME.test(w.name)) problems.push(`${at}.name=${w.name} must be lower-case letters, digits and dashes`);
    if (waveNames.has(w.name)) problems.push(`${at}.name=${w.name} is listed twice: wave names must be unique`);
    waveNames.add(w.name);
    if (!w.clusters && !w.selector) problems.push(`${at} (${w.name}) names no clusters: give clusters: [names] or selector: {label: value}`);
    const chosen = new Set<string>();
    (w.clusters ?? []).forEach((name, j) => {
      if (!names.has(name)) problems.push(`${at}.clusters[${j}]: ${name} is not a cluster of the file (clusters: ${[...names].join(', ')})`);
      else chosen.add(name);
    });
    if (w.selector) {
      const matched = clusters.filter((c) => Object.entries(w.selector!).every(([k, v]) => c.labels[k] === v));
      if (matched.length === 0) problems.push(`${at}.selector ${JSON.stringify(w.selector)} matches no cluster's labels`);
      for (const c of matched) chosen.add(c.name);
    }
    for (const name of chosen) {
      const before = waveOf.get(name);
      if (before) problems.push(`${at} (${w.name}): cluster ${name} is already in wave ${before}; a cluster belongs to one wave`);
      else waveOf.set(name, w.name);
    }
    const soakSeconds = w.soak === undefined ? 0 : parseDuration(w.soak);
    if (soakSeconds === undefined) problems.push(`${at}.soak=${w.soak} is not a duration (e.g. 90s, 15m, 2h, 1d)`);
    const maxConcurrent = w.maxConcurrent ?? Math.max(1, chosen.size);
    if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1) problems.push(`${at}.maxConcurrent=${w.maxConcurrent} must be a whole number of at least 1`);
    const windows = (w.maintenanceWindows ?? []).map((mw, j) => parseWindow(mw, `${at}.maintenanceWindows[${j}]`, problems)).filter((x): x is MaintenanceWindow => x !== undefined);
    waves.push({
      name: w.name,
      clusters: clusters.map((c) => c.name).filter((n) => chosen.has(n)),
      soakSeconds: soakSeconds ?? 0,
      maxConcurrent,
      maintenanceWindows: windows,
    });
  });
  for (const c of clusters) {
    if (!waveOf.has(c.name)) problems.push(`cluster ${c.name} is in no wave, so no commit would ever reach it: add it to a wave`);
  }
  if (problems.length > 0) throw new FleetFileInvalidError(file, problems);
  return { file, clusters, waves };
}

/** Is `at` inside a maintenance window? */
export function inMaintenance(windows: MaintenanceWindow[], at: Date): MaintenanceWindow | undefined {
  const minute = at.getUTCHours() * 60 + at.getUTCMinutes();
  const day = WEEKDAYS[at.getUTCDay()];
  const yesterday = WEEKDAYS[(at.getUTCDay() + 6) % 7];
  return windows.find((w) => {
    if ('start' in w) return at >= w.start && at < w.end;
    const { days, fromMinute, toMinute } = w.weekly;
    if (fromMinute <= toMinute) return days.includes(day) && minute >= fromMinute && minute < toMinute;
    // Crosses midnight: open from `from` on a listed day until `to` on the next.
    return (days.includes(day) && minute >= fromMinute) || (days.includes(yesterday) && minute < toMinute);
  });
}

/** The wave a cluster is in. */
export function waveOfCluster(fleet: Fleet, cluster: string): number {
  return fleet.waves.findIndex((w) => w.clusters.includes(cluster));
}
