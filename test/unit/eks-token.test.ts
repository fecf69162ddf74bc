import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EksTokenSource, execCredentialJson, REFRESH_BEFORE_EXPIRY_MS, signEksToken, TOKEN_LIFETIME_MS } from '../../lib/cluster/eks-token';

/** What `aws eks get-token` printed (scripts/eks-token-vector.py) for fixed credentials and clock. */
interface VectorCase {
  name: string;
  clusterName: string;
  region: string;
  now: string;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  stdout: string;
}

const vector = JSON.parse(readFileSync(join(__dirname, '..', 'vectors', 'eks-get-token.json'), 'utf8')) as { cases: VectorCase[] };

function decode(token: string): URL {
  return new URL(Buffer.from(token.replace(/^k8s-aws-v1\./, ''), 'base64url').toString('utf8'));
}

describe('signEksToken', () => {
  it('has reference cases to compare with', () => {
    expect(vector.cases.length).toBeGreaterThanOrEqual(3);
  });

  it.each(vector.cases.map((c) => [c.name, c] as const))('prints exactly what aws eks get-token prints: %s', async (_name, c) => {
    const token = await signEksToken({ clusterName: c.clusterName, region: c.region, credentials: c.credentials, now: new Date(c.now) });

    expect(execCredentialJson(token)).toBe(c.stdout);
  });

  it('signs the cluster name: another name gives another signature', async () => {
    const c = vector.cases[0];
    const reference = JSON.parse(c.stdout) as { status: { token: string } };

    const other = await signEksToken({ clusterName: `${c.clusterName}-x`, region: c.region, credentials: c.credentials, now: new Date(c.now) });

    const ours = decode(other.token).searchParams;
    const theirs = decode(reference.status.token).searchParams;
    expect(ours.get('X-Amz-SignedHeaders')).toBe('host;x-k8s-aws-id');
    expect(ours.get('X-Amz-Signature')).not.toBe(theirs.get('X-Amz-Signature'));
  });

  it('is a token without base64 padding, for STS in the region and valid 60 s', async () => {
    const c = vector.cases[1];
    const t = await signEksToken({ clusterName: c.clusterName, region: c.region, credentials: c.credentials, now: new Date(c.now) });
    const url = decode(t.token);

    expect(t.token).toMatch(/^k8s-aws-v1\.[A-Za-z0-9_-]+$/);
    expect(url.host).toBe(`sts.${c.region}.amazonaws.com`);
    expect(url.searchParams.get('X-Amz-Expires')).toBe('60');
    expect(url.searchParams.get('X-Amz-Security-Token')).toBe(c.credentials.sessionToken);
  });
});

describe('execCredentialJson', () => {
  it('answers with the API version kubectl asks for, and v1beta1 otherwise', async () => {
    const c = vector.cases[0];
    const t = await signEksToken({ clusterName: c.clusterName, region: c.region, credentials: c.credentials, now: new Date(c.now) });
    const apiVersion = (info?: string) => (JSON.parse(execCredentialJson(t, info)) as { apiVersion: string }).apiVersion;

    expect(apiVersion(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1' }))).toBe('client.authentication.k8s.io/v1');
    expect(apiVersion('not json')).toBe('client.authentication.k8s.io/v1beta1');
    expect(apiVersion(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v9' }))).toBe('client.authentication.k8s.io/v1beta1');
  });
});

describe('EksTokenSource', () => {
  const c = vector.cases[0];
  const start = new Date(c.now).getTime();

  function source(clock: { t: number }, signings: { n: number }) {
    return new EksTokenSource(c.clusterName, c.region, async () => {
      signings.n += 1;
      return c.credentials;
    }, () => new Date(clock.t));
  }

  it('reuses a token until it nears its expiry, then signs a new one before it expires', async () => {
    const clock = { t: start };
    const signings = { n: 0 };
    const s = source(clock, signings);

    const first = await s.token();
    clock.t = start + TOKEN_LIFETIME_MS - REFRESH_BEFORE_EXPIRY_MS - 1000;
    const reused = await s.token();
    clock.t = start + TOKEN_LIFETIME_MS - REFRESH_BEFORE_EXPIRY_MS + 1000;
    const renewed = await s.token();

    expect(reused).toBe(first);
    expect(renewed).not.toBe(first);
    expect(signings.n).toBe(2);
    // The renewed token is signed at the later time, so EKS accepts it for another 15 minutes.
    expect(decode(renewed).searchParams.get('X-Amz-Date')).toBe(new Date(clock.t).toISOString().replace(/[-:]|\.\d{3}/g, ''));
  });

  it('signs once for requests made at the same time', async () => {
    const clock = { t: start };
    const signings = { n: 0 };
    const s = source(clock, signings);

    const tokens = await Promise.all([s.token(), s.token(), s.token()]);

    expect(new Set(tokens).size).toBe(1);
    expect(signings.n).toBe(1);
  });
});
