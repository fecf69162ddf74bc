// A local Serverless plugin, run after serverless-esbuild has zipped the bundles:
//
// - the zips are made again from their files in name order, every file dated 1980-01-01 and
//   with mode 0644, without extra fields: the same sources give the same bytes, so a deploy
//   with nothing changed updates no function (Lambda compares the code's SHA-256);
// - each function's environment in the compiled template (whatever set it) is checked against
//   Lambda's 4 KB limit, which CloudFormation would otherwise report only at CreateFunction;
// - the alias the framework adds to a durable function (the promotion) loses its DependsOn on
//   the function, which its Ref already implies (cfn-lint W3005).
const { execFileSync } = require('node:child_process');
const { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, utimesSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join, relative, resolve } = require('node:path');

/** The earliest time a zip entry can carry (MS-DOS dates start in 1980), in UTC. */
const FIXED_TIME = new Date(Date.UTC(1980, 0, 1, 0, 0, 0));

function filesUnder(dir) {
  const out = [];
  const walk = (d) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else out.push(full);
    }
  };
  walk(dir);
  return out.map((f) => relative(dir, f)).sort();
}

/** Rewrites a zip so that its bytes depend on its files' names and contents only. */
function normalizeZip(zip) {
  const dir = mkdtempSync(join(tmpdir(), 'dsgitops-zip-'));
  try {
    execFileSync('unzip', ['-q', zip, '-d', dir]);
    const files = filesUnder(dir);
    for (const f of files) {
      chmodSync(join(dir, f), 0o644);
      utimesSync(join(dir, f), FIXED_TIME, FIXED_TIME);
    }
    rmSync(zip);
    // -X: no extra fields (uid, gid, extended times); -D: no directory entries; names from stdin in order.
    // TZ=UTC: zip writes local time, so the fixed instant gives the same bytes on every machine.
    execFileSync('zip', ['-q', '-X', '-D', '-9', resolve(zip), '-@'], { cwd: dir, input: `${files.join('\n')}\n`, env: { ...process.env, TZ: 'UTC' } });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

class PackageChecks {
  constructor(serverless) {
    this.serverless = serverless;
    this.hooks = {
      'after:package:createDeploymentArtifacts': () => this.normalizeArtifacts(),
      'before:package:finalize': () => {
        this.checkEnvironments();
        this.dropImpliedAliasDependencies();
      },
    };
  }

  normalizeArtifacts() {
    const seen = new Set();
    for (const name of this.serverless.service.getAllFunctions()) {
      const artifact = this.serverless.service.getFunction(name).package?.artifact;
      if (!artifact || seen.has(artifact)) continue;
      seen.add(artifact);
      const path = resolve(this.serverless.serviceDir ?? this.serverless.config.servicePath, artifact);
      if (statSync(path, { throwIfNoEntry: false })?.isFile()) normalizeZip(path);
    }
  }

  checkEnvironments() {
    const { environmentBytes, ENVIRONMENT_LIMIT_BYTES } = require('./stack.js');
    const resources = this.serverless.service.provider.compiledCloudFormationTemplate.Resources;
    const problems = [];
    for (const [id, r] of Object.entries(resources)) {
      if (r.Type !== 'AWS::Lambda::Function') continue;
      const bytes = environmentBytes(r.Properties.Environment?.Variables ?? {});
      if (bytes > ENVIRONMENT_LIMIT_BYTES) problems.push(`${id}: its environment is ${bytes} bytes, over Lambda's limit of ${ENVIRONMENT_LIMIT_BYTES}`);
    }
    if (problems.length > 0) throw new Error(`daemonset-gitops cannot be deployed:\n  - ${problems.join('\n  - ')}`);
  }
}

PackageChecks.prototype.dropImpliedAliasDependencies = function dropImpliedAliasDependencies() {
  const resources = this.serverless.service.provider.compiledCloudFormationTemplate.Resources;
  for (const r of Object.values(resources)) {
    if (r.Type !== 'AWS::Lambda::Alias' || typeof r.DependsOn !== 'string') continue;
    if (r.Properties?.FunctionName?.Ref === r.DependsOn) delete r.DependsOn;
  }
};

module.exports = PackageChecks;
module.exports.normalizeZip = normalizeZip;
