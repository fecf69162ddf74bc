/**
 * Real git repositories for tests: a bare repository reachable as a file:// URL and a
 * working clone that tests write manifests into, commit and push.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const AUTHOR = {
  GIT_AUTHOR_NAME: 'Test Author',
  GIT_AUTHOR_EMAIL: 'author@example.com',
  GIT_COMMITTER_NAME: 'Test Author',
  GIT_COMMITTER_EMAIL: 'author@example.com',
};

export function git(cwd: string, args: string[], extraEnv: Record<string, string> = {}): string {
  return execFileSync('git', args, { cwd, env: { ...process.env, ...AUTHOR, ...extraEnv }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

export class TestRepo {
  readonly root: string;
  readonly bare: string;
  readonly work: string;

  constructor(prefix = 'dsgitops-repo-') {
    this.root = mkdtempSync(join(tmpdir(), prefix));
    this.bare = join(this.root, 'origin.git');
    this.work = join(this.root, 'work');
    git(this.root, ['init', '--quiet', '--bare', '--initial-branch=main', this.bare]);
    git(this.root, ['init', '--quiet', '--initial-branch=main', this.work]);
    git(this.work, ['remote', 'add', 'origin', this.bare]);
  }

  get url(): string {
    return `file://${this.bare}`;
  }

  write(path: string, content: string): this {
    const file = join(this.work, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content);
    return this;
  }

  remove(path: string): this {
    rmSync(join(this.work, path), { force: true });
    return this;
  }

  /** Commits everything and pushes to main; returns the new commit sha. */
  commit(message: string): string {
    git(this.work, ['add', '-A']);
    git(this.work, ['commit', '--quiet', '--allow-empty', '-m', message]);
    git(this.work, ['push', '--quiet', 'origin', 'HEAD:main']);
    return git(this.work, ['rev-parse', 'HEAD']);
  }

  cleanup(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}
