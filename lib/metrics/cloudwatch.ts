/**
 * The one place that reads CloudWatch: `GetMetricData` for a gate's metric, one query per
 * gated node when a dimension names `{node}`, bounded by a timeout. Returns the newest
 * datapoint of each metric that has one; a metric without datapoints is no data.
 */
import { CloudWatchClient, GetMetricDataCommand, MetricDataQuery } from '@aws-sdk/client-cloudwatch';
import type { CloudWatchQuery } from '../rollout/gates';
import { MetricQueryError } from './prometheus';

const clients = new Map<string, CloudWatchClient>();

function clientFor(region: string, endpoint: string | undefined): CloudWatchClient {
  const key = `${region} ${endpoint ?? ''}`;
  let c = clients.get(key);
  if (!c) {
    c = new CloudWatchClient({ region, ...(endpoint ? { endpoint } : {}), maxAttempts: 1 });
    clients.set(key, c);
  }
  return c;
}

/** The metric's dimensions for one node (or for all, when no value names `{node}`). */
export function cloudWatchDimensions(q: CloudWatchQuery, node: string | undefined, vars: { daemonSet: string; namespace: string }): { Name: string; Value: string }[] {
  return Object.entries(q.dimensions).map(([Name, value]) => ({
    Name,
    Value: value.replaceAll('{node}', node ?? '').replaceAll('{daemonset}', vars.daemonSet).replaceAll('{namespace}', vars.namespace),
  }));
}

export async function queryCloudWatch(q: CloudWatchQuery, nodes: readonly string[], vars: { daemonSet: string; namespace: string }, region: string, timeoutMs: number, now: Date): Promise<number[]> {
  const perNode = Object.values(q.dimensions).some((v) => v.includes('{node}'));
  const targets = perNode ? [...nodes] : [undefined];
  if (targets.length === 0) return [];
  const queries: MetricDataQuery[] = targets.map((node, i) => ({
    Id: `m${i}`,
    MetricStat: {
      Metric: { Namespace: q.namespace, MetricName: q.metricName, Dimensions: cloudWatchDimensions(q, node, vars) },
      Period: q.periodSeconds,
      Stat: q.stat,
    },
    ReturnData: true,
  }));
  // Wide enough for a metric published once per period, a little late.
  const windowSeconds = Math.max(q.periodSeconds * 3, 300);
  try {
    const out = await clientFor(q.region ?? region, q.endpoint).send(new GetMetricDataCommand({
      MetricDataQueries: queries,
      StartTime: new Date(now.getTime() - windowSeconds * 1000),
      EndTime: new Date(now.getTime() + 60_000),
      ScanBy: 'TimestampDescending',
    }), { abortSignal: AbortSignal.timeout(timeoutMs) });
    return (out.MetricDataResults ?? []).flatMap((r) => {
      if (!r.Values?.length) return [];
      const newest = (r.Timestamps ?? []).map((t, i) => ({ t: t.getTime(), v: r.Values![i] })).sort((a, b) => b.t - a.t)[0];
      return [newest ? newest.v : r.Values[0]];
    });
  } catch (err) {
    const e = err as Error;
    if (e.name === 'AbortError' || e.name === 'TimeoutError') throw new MetricQueryError(`no answer from CloudWatch within ${timeoutMs / 1000}s`);
    throw new MetricQueryError(`CloudWatch GetMetricData: ${e.name}: ${e.message}`);
  }
}
