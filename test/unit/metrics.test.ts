import { passMetrics } from '../../lib/metrics';
import type { ReconcileReport } from '../../lib/report';

function report(result: ReconcileReport['result'], dryRun = false): ReconcileReport {
  return {
    kind: 'ReconcileReport', runId: 'r', cluster: 'prod-eu-1', dryRun, result,
    startedAt: '2026-01-01T00:00:00.000Z', finishedAt: '2026-01-01T00:00:02.500Z',
    summary: {}, daemonSets: [], problems: [], kubernetesRequests: 0,
  } as ReconcileReport;
}

/** Reads a document as CloudWatch's embedded metric format specification defines it: the values of the metrics `_aws` names, by namespace and dimensions. */
function extracted(doc: Record<string, unknown>): Record<string, number> {
  const aws = doc._aws as { Timestamp: number; CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[] };
  const out: Record<string, number> = {};
  for (const d of aws.CloudWatchMetrics) {
    const dims = d.Dimensions.map((set) => set.map((n) => `${n}=${String(doc[n])}`).join(',')).join(';');
    for (const m of d.Metrics) out[`${d.Namespace}/${m.Name}{${dims}}`] = doc[m.Name] as number;
  }
  return out;
}

describe('passMetrics', () => {
  it('counts a failed pass as failed and a finished one as successful, per cluster, with its duration', () => {
    expect(extracted(passMetrics(report('failed')))).toEqual({
      'daemonset-gitops/FailedPasses{Cluster=prod-eu-1}': 1,
      'daemonset-gitops/SuccessfulPasses{Cluster=prod-eu-1}': 0,
      'daemonset-gitops/PassDuration{Cluster=prod-eu-1}': 2500,
    });
    expect(extracted(passMetrics(report('succeeded')))).toMatchObject({ 'daemonset-gitops/SuccessfulPasses{Cluster=prod-eu-1}': 1, 'daemonset-gitops/FailedPasses{Cluster=prod-eu-1}': 0 });
    expect((passMetrics(report('failed'))._aws as { Timestamp: number }).Timestamp).toBe(Date.parse('2026-01-01T00:00:02.500Z'));
  });

  it('counts a dry run as neither: the alarm on no successful pass is about passes that apply', () => {
    const m = extracted(passMetrics(report('succeeded', true)));
    expect(m['daemonset-gitops/SuccessfulPasses{Cluster=prod-eu-1}']).toBe(0);
    expect(m['daemonset-gitops/FailedPasses{Cluster=prod-eu-1}']).toBe(0);
  });
});
