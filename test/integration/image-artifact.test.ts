/**
 * The container-image artifact (`--param="artifact=image"`) renders like the zip with its layer:
 * what can be checked without a Docker engine. deploy/artifact.js names a build context that
 * scripts/image-context.ts prepares; every file the Dockerfile copies is in it (Docker refuses a
 * build whose COPY source is missing), its bundling command builds every handler from the
 * context's files alone, and the context's renderers are the layer's bytes, static x86_64
 * programs, copied where lib/source/render.ts looks (/opt/bin), that render the example overlay.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { LAYER_BIN_DIR, renderKustomization } from '../../lib/source/render';
import { ensureRenderersLayer } from '../../scripts/renderers-layer';
import { repoRoot } from '../../stack/paths';
import { HELM_VERSION, KUSTOMIZE_VERSION } from '../../stack/versions';

jest.setTimeout(300_000);

// eslint-disable-next-line @typescript-eslint/no-require-imports
const artifact = require('../../deploy/artifact.js') as (s: { resolveVariable: (v: string) => Promise<string> }) => Promise<{
  handler: Record<string, string | null>;
  image: Record<string, { name: string; command: string[] } | null>;
  ecr: { images: Record<string, { path: string; file: string; platform: string }> } | null;
}>;

const resolveAs = (value: string) => ({ resolveVariable: async (v: string) => (v.startsWith('param:artifact') ? value : Promise.reject(new Error(`unexpected variable ${v}`))) });

interface Instruction { stage: number; op: string; args: string }

/** The Dockerfile's instructions, continuation lines joined, comments dropped (Docker's own reading of the format). */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  for (const line of text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))) {
    const [op, ...rest] = line.split(/\s+/);
    if (op.toUpperCase() === 'FROM') stage++;
    out.push({ stage, op: op.toUpperCase(), args: rest.join(' ') });
  }
  return out;
}

/** The ELF header's machine and whether the program asks for a dynamic loader (a PT_INTERP program header). */
function elf(path: string): { machine: number; interpreter: boolean } {
  const b = readFileSync(path);
  expect(b.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
  expect(b[4]).toBe(2); // 64-bit
  const phoff = Number(b.readBigUInt64LE(0x20));
  const phentsize = b.readUInt16LE(0x36);
  const phnum = b.readUInt16LE(0x38);
  let interpreter = false;
  for (let i = 0; i < phnum; i++) if (b.readUInt32LE(phoff + i * phentsize) === 3) interpreter = true;
  return { machine: b.readUInt16LE(0x12), interpreter };
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('the container-image artifact', () => {
  let context: string;
  let dockerfile: Instruction[];

  beforeAll(async () => {
    const out = await artifact(resolveAs('image'));
    const image = out.ecr!.images.dsgitops;
    context = image.path;
    expect(image).toEqual({ path: join(repoRoot, 'dist', 'image-context'), file: 'Dockerfile', platform: 'linux/amd64' });
    dockerfile = instructions(readFileSync(join(context, image.file), 'utf8'));
  });

  it('gives every function the image with its own handler, and no zip handler', async () => {
    const out = await artifact(resolveAs('image'));
    for (const [fn, image] of Object.entries(out.image)) {
      expect({ fn, image, handler: out.handler[fn] }).toEqual({ fn, image: { name: 'dsgitops', command: [`handlers/${fn}.handler`] }, handler: null });
    }
    expect(Object.keys(out.image)).toContain('reconcile');
    expect((await artifact(resolveAs('zip'))).ecr).toBeNull();
  });

  it('holds every file the Dockerfile copies from the context, and the Dockerfile is deploy/Dockerfile', () => {
    expect(readFileSync(join(context, 'Dockerfile'), 'utf8')).toBe(readFileSync(join(repoRoot, 'deploy', 'Dockerfile'), 'utf8'));
    const copies = dockerfile.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'));
    expect(copies.length).toBeGreaterThan(3);
    for (const c of copies) {
      const words = c.args.split(/\s+/);
      for (const source of words.slice(0, -1)) expect({ source, there: existsSync(join(context, source)) }).toEqual({ source, there: true });
    }
  });

  it('copies the renderers into /opt/bin of the image that runs, where lib/source/render.ts looks', () => {
    const last = Math.max(...dockerfile.map((i) => i.stage));
    const copy = dockerfile.find((i) => i.stage === last && i.op === 'COPY' && i.args.includes('kustomize'));
    expect(copy?.args.split(/\s+/)).toEqual(['renderers/bin/kustomize', 'renderers/bin/helm', `${LAYER_BIN_DIR}/`]);
    // Nothing in the image's environment points the renderers elsewhere.
    expect(dockerfile.filter((i) => i.op === 'ENV' && /KUSTOMIZE_BIN|HELM_BIN/.test(i.args))).toEqual([]);
  });

  it('carries the layer\'s own programs: the same bytes, static x86_64 builds of the pinned versions', async () => {
    const layer = await ensureRenderersLayer();
    for (const name of ['kustomize', 'helm']) {
      const inContext = join(context, 'renderers', 'bin', name);
      const inLayer = execFileSync('unzip', ['-p', layer, `bin/${name}`], { maxBuffer: 256 << 20 });
      expect({ name, digest: sha256(readFileSync(inContext)) }).toEqual({ name, digest: sha256(inLayer) });
      expect(statSync(inContext).mode & 0o111).toBe(0o111);
      // EM_X86_64 (62), and no dynamic loader: it runs on the Lambda base image's Amazon Linux as it is.
      expect({ name, ...elf(inContext) }).toEqual({ name, machine: 62, interpreter: false });
    }
    expect(execFileSync(join(context, 'renderers', 'bin', 'kustomize'), ['version'], { encoding: 'utf8' }).trim()).toBe(KUSTOMIZE_VERSION);
    expect(execFileSync(join(context, 'renderers', 'bin', 'helm'), ['version', '--template', '{{.Version}}'], { encoding: 'utf8' }).trim()).toBe(HELM_VERSION);
  });

  it('renders the example overlay, with its chart, with the programs the image carries', async () => {
    const bin = join(context, 'renderers', 'bin');
    const out = await renderKustomization({ repoDir: join(repoRoot, 'examples'), gitPath: 'kustomize/clusters/local-demo-rendered', config: { allowRemote: false, timeoutSeconds: 120, maxOutputBytes: 16 << 20, kustomize: join(bin, 'kustomize'), helm: join(bin, 'helm') } });
    const kinds = parseAllDocuments(out.yaml).map((d) => d.toJS() as { kind: string; metadata: { name: string } }).filter(Boolean);
    expect(kinds.filter((o) => o.kind === 'DaemonSet').length).toBeGreaterThanOrEqual(2);
    expect(out.by).toEqual({ renderer: 'kustomize', kustomization: 'kustomize/clusters/local-demo-rendered/kustomization.yaml', kustomizeVersion: KUSTOMIZE_VERSION, helmVersion: expect.stringMatching(new RegExp(`^${HELM_VERSION.replace(/\./g, '\\.')}`)) });
  });

  it('builds every handler\'s bundle from the context\'s files alone, with the Dockerfile\'s own command', () => {
    const run = dockerfile.find((i) => i.stage === 0 && i.op === 'RUN' && i.args.includes('esbuild'));
    expect(run).toBeDefined();
    const build = mkdtempSync(join(tmpdir(), 'dsgitops-image-build-'));
    dirs.push(build);
    // COPY as Docker does it into WORKDIR: a folder's contents into the destination, a file into a destination folder (ending in /) under its own name.
    for (const c of dockerfile.filter((i) => i.stage === 0 && i.op === 'COPY')) {
      const words = c.args.split(/\s+/);
      const dest = words.at(-1)!;
      for (const source of words.slice(0, -1)) {
        const from = join(context, source);
        const to = statSync(from).isDirectory() || !dest.endsWith('/') ? join(build, dest) : join(build, dest, source.split('/').filter(Boolean).at(-1)!);
        cpSync(from, to, { recursive: true });
      }
    }
    // `npm ci` of the image's first stage, from the same lock file: the repository's node_modules.
    symlinkSync(join(repoRoot, 'node_modules'), join(build, 'node_modules'));
    execFileSync('sh', ['-c', run!.args], { cwd: build, stdio: ['ignore', 'pipe', 'pipe'] });
    const handlers = readdirSync(join(repoRoot, 'handlers')).filter((f) => f.endsWith('.ts') && f !== 'invocation.ts').map((f) => f.replace(/\.ts$/, '.js')).sort();
    expect(readdirSync(join(build, 'out', 'handlers')).filter((f) => f.endsWith('.js')).sort()).toEqual(handlers);
  });

  it('refuses LAMBDA_ARCHITECTURE=arm64 with the image, whose renderers are x86_64, naming the fix', async () => {
    const saved = process.env.LAMBDA_ARCHITECTURE;
    process.env.LAMBDA_ARCHITECTURE = 'arm64';
    try {
      await expect(artifact(resolveAs('image'))).rejects.toThrow(/LAMBDA_ARCHITECTURE=arm64 with artifact=image: .*x86_64.*unset LAMBDA_ARCHITECTURE, or deploy the zip packages/);
      await expect(artifact(resolveAs('zip'))).resolves.toMatchObject({ ecr: null });
    } finally {
      if (saved === undefined) delete process.env.LAMBDA_ARCHITECTURE;
      else process.env.LAMBDA_ARCHITECTURE = saved;
    }
  });
});
