/**
 * The one place that queries Prometheus: an instant query over its HTTP API
 * (`GET /api/v1/query`), bounded by a timeout. Returns one number per series (the last
 * sample of each series of a range vector); an empty result is no data, never zero.
 */
export class MetricQueryError extends Error {}

interface PromResponse {
  status: 'success' | 'error';
  error?: string;
  errorType?: string;
  data?: { resultType: 'vector' | 'matrix' | 'scalar' | 'string'; result: unknown };
}

type Sample = [number, string];

export async function queryPrometheus(address: string, query: string, timeoutMs: number): Promise<number[]> {
  const url = `${address}/api/v1/query?query=${encodeURIComponent(query)}`;
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    if (e.name === 'TimeoutError') throw new MetricQueryError(`no answer from ${address} within ${timeoutMs / 1000}s`);
    throw new MetricQueryError(`${address}: ${e.cause?.code ?? e.cause?.message ?? e.message}`);
  }
  const text = await res.text();
  let body: PromResponse;
  try {
    body = JSON.parse(text) as PromResponse;
  } catch {
    throw new MetricQueryError(`${address} answered HTTP ${res.status} with a body that is not Prometheus' JSON: ${text.slice(0, 200)}`);
  }
  if (body.status !== 'success' || !body.data) throw new MetricQueryError(`${address}: ${body.errorType ?? `HTTP ${res.status}`}: ${body.error ?? 'the query failed'}`);
  const { resultType, result } = body.data;
  switch (resultType) {
    case 'scalar':
      return [Number((result as Sample)[1])];
    case 'vector':
      return (result as { value: Sample }[]).map((r) => Number(r.value[1]));
    case 'matrix':
      return (result as { values: Sample[] }[]).filter((r) => r.values.length > 0).map((r) => Number(r.values[r.values.length - 1][1]));
    default:
      throw new MetricQueryError(`${address}: the query returned a ${resultType}, not numbers: write a query that returns a vector or a scalar`);
  }
}
