import { FleetFileInvalidError, inMaintenance, parseDuration, parseFleetFile } from '../../../lib/fleet/fleet-file';

const good = `
clusters:
  - name: staging
    labels: { env: staging }
  - name: prod-a
    eks: { name: prod-a-eks, region: eu-west-1, roleArn: "arn:aws:iam::111122223333:role/dsgitops-prod-a" }
    labels: { env: prod }
  - name: prod-b
    path: manifests/b
    labels: { env: prod }
waves:
  - name: canary
    clusters: [staging]
    soak: 30m
  - name: prod
    selector: { env: prod }
    soak: 1h
    maxConcurrent: 1
    maintenanceWindows:
      - { start: "2026-12-24T00:00:00Z", end: "2026-12-27T00:00:00Z" }
      - { weekly: { days: [sat], from: "22:00", to: "02:00" } }
`;

function problemsOf(text: string): string[] {
  try {
    parseFleetFile(text, 'fleet.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(FleetFileInvalidError);
    expect((err as Error).message.startsWith('fleet.yaml: ')).toBe(true);
    return (err as FleetFileInvalidError).problems;
  }
  throw new Error('the fleet file was accepted');
}

describe('parseFleetFile', () => {
  it('reads clusters, their paths (clusters/{cluster} by default) and waves by name and by selector', () => {
    const fleet = parseFleetFile(good, 'fleet.yaml');
    expect(fleet.clusters.map((c) => [c.name, c.path])).toEqual([['staging', 'clusters/staging'], ['prod-a', 'clusters/prod-a'], ['prod-b', 'manifests/b']]);
    expect(fleet.clusters[1].eks).toEqual({ clusterName: 'prod-a-eks', region: 'eu-west-1', roleArn: 'arn:aws:iam::111122223333:role/dsgitops-prod-a' });
    expect(fleet.waves.map((w) => [w.name, w.clusters, w.soakSeconds, w.maxConcurrent])).toEqual([
      ['canary', ['staging'], 1800, 1],
      ['prod', ['prod-a', 'prod-b'], 3600, 1],
    ]);
    expect(fleet.waves[1].maintenanceWindows).toHaveLength(2);
  });

  it('names the field and the fix for each problem, all at once', () => {
    const problems = problemsOf(`
clusters:
  - name: Staging
  - name: prod-a
    eks: { name: prod-a, region: europe, roleArn: "role/x" }
  - name: prod-a
waves:
  - name: one
    clusters: [staging, prod-c]
    soak: soon
    maxConcurrent: 0
`);
    expect(problems).toEqual(expect.arrayContaining([
      'clusters[0].name=Staging must be lower-case letters, digits and dashes (it keys the cluster\'s state in S3)',
      'clusters[1].eks.region=europe is not an AWS region (e.g. eu-west-1)',
      'clusters[1].eks.roleArn=role/x is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)',
      'clusters[2].name=prod-a is listed twice: cluster names must be unique',
      'waves[0].clusters[0]: staging is not a cluster of the file (clusters: Staging, prod-a)',
      'waves[0].clusters[1]: prod-c is not a cluster of the file (clusters: Staging, prod-a)',
      'waves[0].soak=soon is not a duration (e.g. 90s, 15m, 2h, 1d)',
      'waves[0].maxConcurrent=0 must be a whole number of at least 1',
    ]));
  });

  it('refuses a cluster in no wave or in two, and unknown fields', () => {
    expect(problemsOf('clusters: [{name: a}, {name: b}]\nwaves: [{name: w, clusters: [a]}]')).toEqual(['cluster b is in no wave, so no commit would ever reach it: add it to a wave']);
    expect(problemsOf('clusters: [{name: a}]\nwaves: [{name: w, clusters: [a]}, {name: v, clusters: [a]}]')).toEqual(['waves[1] (v): cluster a is already in wave w; a cluster belongs to one wave']);
    expect(problemsOf('clusters: [{name: a, region: x}]\nwaves: [{name: w, clusters: [a]}]')[0]).toMatch(/^clusters\[0\]: .*region/);
    expect(problemsOf('clusters: [{name: a}]')[0]).toMatch(/^waves: /);
    expect(problemsOf('clusters: [{name: a, path: ../x}]\nwaves: [{name: w, clusters: [a]}]')).toEqual(['clusters[0].path=../x must be a relative path inside the repository (no leading / and no ..)']);
  });

  it('reports YAML syntax errors with the file name', () => {
    expect(() => parseFleetFile('clusters: [', 'repo/fleet.yaml')).toThrow(/^repo\/fleet\.yaml: YAML: /);
  });
});

describe('parseDuration', () => {
  it.each([['90', 90], ['90s', 90], ['15m', 900], ['2h', 7200], ['1d', 86400], [45, 45]])('%s is %d seconds', (v, s) => expect(parseDuration(v)).toBe(s));
  it.each(['1.5h', '-1m', 'soon', ''])('%s is not a duration', (v) => expect(parseDuration(v)).toBeUndefined());
});

describe('inMaintenance', () => {
  const fleet = parseFleetFile(good, 'fleet.yaml');
  const windows = fleet.waves[1].maintenanceWindows;
  it.each([
    ['2026-12-25T12:00:00Z', true, 'inside the fixed window'],
    ['2026-12-27T03:00:00Z', false, 'after the fixed window, outside the weekly one'],
    ['2026-12-05T23:00:00Z', true, 'Saturday 23:00, inside the weekly window'],
    ['2026-12-06T01:59:00Z', true, 'Sunday 01:59, the weekly window crossing midnight'],
    ['2026-12-06T02:00:00Z', false, 'Sunday 02:00, when it closes'],
    ['2026-12-05T21:59:00Z', false, 'Saturday before it opens'],
  ])('%s: %s (%s)', (at, inside) => {
    expect(Boolean(inMaintenance(windows, new Date(at)))).toBe(inside);
  });
});
