/**
 * Reading the project's Markdown as the documentation tests need it: which pages there are, their
 * fenced code blocks, the shell commands those blocks show, and the figures a page states.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/** README.md and every page under docs/ (sub-folders included), relative to `root`. */
export function docPages(root: string): string[] {
  const walk = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return walk(path);
    return e.name.endsWith('.md') ? [relative(root, path)] : [];
  });
  return ['README.md', ...walk(join(root, 'docs')).sort()];
}

export function readPage(root: string, page: string): string {
  return readFileSync(join(root, page), 'utf8');
}

export interface Block {
  /** The info string after the opening fence (`sh`, `yaml`…), '' when there is none. */
  lang: string;
  /** 1-based line of the opening fence. */
  line: number;
  lines: string[];
}

/** The fenced code blocks of a page (``` fences, indented or not). */
export function fencedBlocks(markdown: string): Block[] {
  const out: Block[] = [];
  let open: Block | undefined;
  markdown.split('\n').forEach((text, i) => {
    const fence = /^\s*```\s*([\w-]*)/.exec(text);
    if (fence && !open) open = { lang: fence[1].toLowerCase(), line: i + 1, lines: [] };
    else if (fence && open) {
      out.push(open);
      open = undefined;
    } else if (open) open.lines.push(text);
  });
  if (open) throw new Error(`code block opened at line ${open.line} is never closed`);
  return out;
}

/** The lines outside code blocks, with their 1-based numbers. */
export function proseLines(markdown: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  let code = false;
  markdown.split('\n').forEach((text, i) => {
    if (/^\s*```/.test(text)) code = !code;
    else if (!code) out.push({ line: i + 1, text });
  });
  return out;
}

const SHELL_LANGS = new Set(['sh', 'bash', 'shell', 'zsh', 'console', 'shell-session']);

/** Words a shell command of this project's documentation starts with (for blocks with no language). */
const SHELL_WORDS = /^(\$ |npm|npx|node|tsx|dsgitops|git|kubectl|aws|serverless|sls|export|set|cd|curl|gpg|ssh-keygen|docker|helm|kustomize|\.ci\/|\.\/|scripts\/)(\s|$|\/)/;

/** Whether a block shows shell commands: by its language, or, unlabelled, by its first line. */
export function isShellBlock(block: Block): boolean {
  if (SHELL_LANGS.has(block.lang)) return true;
  if (block.lang !== '') return false;
  const first = block.lines.find((l) => l.trim() !== '');
  return first !== undefined && SHELL_WORDS.test(first.trim());
}

export interface DocCommand {
  page: string;
  /** 1-based line where the command starts. */
  line: number;
  /** The command as one line: continuations joined, the prompt and the trailing comment removed. */
  command: string;
}

/** Drop a trailing `# comment` that is outside quotes. */
function withoutComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]))) return line.slice(0, i);
  }
  return line;
}

/**
 * Every shell command the page's shell blocks show. In a `console` block (or any block whose
 * lines carry a `$ ` prompt) only the prompted lines are commands, the rest is their output.
 * Lines ending in `\` continue on the next line; comment lines are not commands.
 */
export function shellCommands(page: string, markdown: string): DocCommand[] {
  const out: DocCommand[] = [];
  for (const block of fencedBlocks(markdown).filter(isShellBlock)) {
    const prompted = block.lang === 'console' || block.lines.some((l) => /^\s*\$ /.test(l));
    let pending: { line: number; parts: string[] } | undefined;
    block.lines.forEach((raw, i) => {
      const line = block.line + 1 + i;
      let text = raw;
      if (!pending) {
        if (prompted) {
          const m = /^\s*\$ (.*)$/.exec(text);
          if (!m) return;
          text = m[1];
        }
        if (/^\s*(#|$)/.test(text)) return;
      }
      const stripped = withoutComment(text).trimEnd();
      const continues = stripped.endsWith('\\');
      const part = (continues ? stripped.slice(0, -1) : stripped).trim();
      pending ??= { line, parts: [] };
      if (part) pending.parts.push(part);
      if (!continues) {
        out.push({ page, line: pending.line, command: pending.parts.join(' ') });
        pending = undefined;
      }
    });
    if (pending) out.push({ page, line: pending.line, command: pending.parts.join(' ') });
  }
  return out;
}

/** A command as the registry keys it: whitespace collapsed. */
export function normalise(command: string): string {
  return command.trim().replace(/\s+/g, ' ');
}
