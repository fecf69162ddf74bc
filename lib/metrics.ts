/**
 * Metrics in CloudWatch's embedded metric format: a JSON log line whose `_aws` member tells
 * CloudWatch Logs which of its fields are metrics and which are dimensions. Lambda sends
 * every line a function writes to its log group, and CloudWatch extracts the metrics from
 * it: no metric filter, no PutMetricData call, no client in the bundle.
 *
 * The format: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
 */
import type { ReconcileReport } from './report';

/** The namespace of every metric this project writes (deploy/stack.js alarms on them). */
export const METRICS_NAMESPACE = 'daemonset-gitops';

export type MetricUnit = 'Count' | 'Milliseconds' | 'Bytes';

export interface Metric {
  name: string;
  value: number;
  unit: MetricUnit;
}

/**
 * The fields of one embedded-metric document: the metrics and dimensions as members, and
 * the `_aws` directive naming them. `at` is the metrics' time (milliseconds since the epoch).
 */
export function embeddedMetrics(dimensions: Record<string, string>, metrics: Metric[], at: number): Record<string, unknown> {
  const fields: Record<string, unknown> = {
    _aws: {
      Timestamp: at,
      CloudWatchMetrics: [{
        Namespace: METRICS_NAMESPACE,
        Dimensions: [Object.keys(dimensions)],
        Metrics: metrics.map((m) => ({ Name: m.name, Unit: m.unit })),
      }],
    },
    ...dimensions,
  };
  for (const m of metrics) fields[m.name] = m.value;
  return fields;
}

/**
 * What a pass counts for, per cluster: one failed or one successful pass (a dry run counts
 * for neither: the alarm on no successful pass is about the passes that keep the cluster
 * equal to Git), and how long it took.
 */
export function passMetrics(report: ReconcileReport): Record<string, unknown> {
  const failed = report.result === 'failed';
  const counted = !report.dryRun;
  const metrics: Metric[] = [
    { name: 'FailedPasses', value: counted && failed ? 1 : 0, unit: 'Count' },
    { name: 'SuccessfulPasses', value: counted && !failed ? 1 : 0, unit: 'Count' },
    { name: 'PassDuration', value: Math.max(0, Date.parse(report.finishedAt) - Date.parse(report.startedAt)), unit: 'Milliseconds' },
  ];
  return embeddedMetrics({ Cluster: report.cluster }, metrics, Date.parse(report.finishedAt));
}
