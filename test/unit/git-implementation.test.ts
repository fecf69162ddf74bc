import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findGitBinary, gitImplementation } from '../../lib/source/git';

describe('findGitBinary', () => {
  let a: string;
  let b: string;
  beforeEach(() => {
    a = mkdtempSync(join(tmpdir(), 'dsgitops-path-a-'));
    b = mkdtempSync(join(tmpdir(), 'dsgitops-path-b-'));
  });
  afterEach(() => {
    rmSync(a, { recursive: true, force: true });
    rmSync(b, { recursive: true, force: true });
  });

  it('finds the first executable git on PATH, as a shell would', () => {
    writeFileSync(join(b, 'git'), '#!/bin/sh\n');
    chmodSync(join(b, 'git'), 0o755);
    expect(findGitBinary(`${a}:${b}`)).toBe(join(b, 'git'));
  });

  it('ignores a git that is not executable, and an empty PATH entry', () => {
    writeFileSync(join(a, 'git'), 'not a program\n');
    chmodSync(join(a, 'git'), 0o644);
    // root may read and write anything, but never executes a file without an execute bit.
    expect(findGitBinary(`::${a}`)).toBeUndefined();
  });
});

describe('gitImplementation', () => {
  const saved = process.env.PATH;
  afterEach(() => {
    process.env.PATH = saved;
  });

  it('is isomorphic-git where PATH has no git, as in the Lambda Node.js runtime, and the git binary where it has', () => {
    const empty = mkdtempSync(join(tmpdir(), 'dsgitops-path-'));
    try {
      process.env.PATH = empty;
      expect(gitImplementation()).toBe('isomorphic-git');
      writeFileSync(join(empty, 'git'), '#!/bin/sh\n');
      chmodSync(join(empty, 'git'), 0o755);
      process.env.PATH = `${empty}:`;
      expect(gitImplementation()).toBe('git-binary');
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
