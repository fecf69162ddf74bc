/**
 * Figures are written by the benchmarks, never by hand. Every page under docs/performance/ carries
 * the header bench/report.ts writes (the command that made it, naming a `bench:*` script of
 * package.json; the commit and the load average of a real run, or the placeholder's "not yet
 * generated"), every benchmark has its page, and no other page of the README or docs/ holds a
 * measurement:
 *
 * 1. no table row outside docs/performance/ has a cell with a number and a unit of time or size
 *    (ms, s, min, MiB, KiB, GiB, MB, KB, GB, bytes) outside code spans and quoted messages — the
 *    shape of a table of results;
 * 2. no code block outside docs/performance/ holds a benchmark's printed output (its header line
 *    names the load average);
 * 3. no prose line outside docs/performance/ states a figure in ms, MiB, KiB or GiB, unless
 *    PROSE_REFERENCES below lists it: a limit, a setting or a design value the text explains,
 *    never a result.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { GENERATED_MARK, pagePath, parseHeader, renderPage, renderPlaceholder } from '../../bench/report';
import { docPages, fencedBlocks, proseLines, readPage } from '../support/markdown';

const root = resolve(__dirname, '..', '..');
const scripts = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
const benchScripts = Object.keys(scripts).filter((s) => s.startsWith('bench:'));
const perfDir = join('docs', 'performance');
const generated = readdirSync(join(root, perfDir)).filter((f) => f.endsWith('.md')).map((f) => join(perfDir, f));

/**
 * Prose that states a figure in ms, MiB, KiB or GiB which is not a measurement: [page, an
 * excerpt of the line, why it is not a result]. Nothing else may be listed here.
 */
export const PROSE_REFERENCES: [string, string, string][] = [
  ['docs/ui.md', '20 KiB', 'the size a timeline is bounded to (240 points), a design limit'],
  ['docs/ui.md', '64 KiB', 'the pass record is cut to this size: a limit of the code'],
  ['docs/ui.md', '250 ms', 'the page batches updates over this interval: a setting of the code'],
  ['docs/webhook.md', '1 MiB', 'the default of WEBHOOK_MAX_BODY_BYTES'],
  ['docs/performance.md', '500 ms', 'the first paint target the benchmark is read against'],
  ['docs/performance.md', '250 ms', 'the cold init target the benchmark is read against'],
  ['docs/performance.md', '100 ms', 'the warm no-op pass budget the benchmark is read against'],
  ['docs/aws.md', '250 ms', 'the cold init target of each function'],
];

const TABLE_FIGURE = /(^|[^\w.])\d[\d,]*(\.\d+)?\s?(ms|s|min|MiB|KiB|GiB|MB|KB|GB|bytes)\b/;
const PROSE_FIGURE = /(^|[^\w.])\d[\d,]*(\.\d+)?\s?(ms|MiB|KiB|GiB)\b/;
const BENCH_OUTPUT = /load average [0-9.]+/;

/** The measurements a page holds by the three rules above, as `line: text` for the message. */
export function handCopiedFigures(page: string, markdown: string, references = PROSE_REFERENCES): string[] {
  const found: string[] = [];
  for (const { line, text } of proseLines(markdown)) {
    const row = /^\s*\|/.test(text);
    if (row && /^\s*\|[\s|:-]+\|\s*$/.test(text)) continue;
    const cells = row ? text.split('|').map((c) => c.replace(/`[^`]*`|"[^"]*"/g, '')) : [];
    if (row && cells.some((c) => TABLE_FIGURE.test(c))) found.push(`${page}:${line}: table row with a measured figure: ${text.trim()}`);
    else if (!row && PROSE_FIGURE.test(text.replace(/`[^`]*`/g, ''))) {
      const listed = references.some(([p, excerpt]) => p === page && text.includes(excerpt));
      if (!listed) found.push(`${page}:${line}: figure in prose: ${text.trim()}`);
    }
  }
  for (const block of fencedBlocks(markdown)) {
    const i = block.lines.findIndex((l) => BENCH_OUTPUT.test(l));
    if (i >= 0) found.push(`${page}:${block.line + 1 + i}: a benchmark's output pasted in a code block: ${block.lines[i].trim()}`);
  }
  return found;
}

describe('docs/performance/: pages written by the benchmarks', () => {
  it('finds the benchmarks and their pages', () => {
    expect(benchScripts).toEqual(expect.arrayContaining(['bench:ui', 'bench:steady', 'bench:bundle']));
    expect(generated.length).toBeGreaterThanOrEqual(benchScripts.length);
  });

  it.each(generated)('%s carries the generated header naming an npm script that exists', (page) => {
    const header = parseHeader(readFileSync(join(root, page), 'utf8'));
    expect(header).toBeDefined();
    expect(Object.keys(scripts)).toContain(header!.script);
    const base = pagePath(header!.script);
    const variant = /--write=([a-z0-9-]+)/.exec(readFileSync(join(root, page), 'utf8'))?.[1];
    expect(page).toBe(pagePath(header!.script, variant));
    expect(page.startsWith(base.replace(/\.md$/, ''))).toBe(true);
  });

  it.each(benchScripts)('%s has its page (from a run, or a placeholder saying how to make it)', (script) => {
    expect(generated).toContain(pagePath(script));
  });

  it('tells a generated page from one written by hand', () => {
    const run = {
      script: 'bench:ui', source: 'bench/ui-first-paint.ts', args: ['--runs', '8'], commit: '0123456789ab', uncommitted: [],
      startedAt: new Date('2026-12-06T18:00:00Z'), endedAt: new Date('2026-12-06T18:01:00Z'),
      machine: { cpu: 'CPU', cores: 2, memoryGiB: 8, loadStart: [2.4, 2, 1], loadEnd: [2.5, 2, 1], node: 'v24.0.0', os: 'linux' },
      output: 'first paint, median of 8: 230 ms\n',
    };
    const page = renderPage(run);
    expect(parseHeader(page)).toEqual({ script: 'bench:ui', command: 'npm run bench:ui -- --runs 8', placeholder: false });
    expect(page).toContain('2.40 2.00 1.00 at the start');
    expect(parseHeader(renderPage({ ...run, variant: 'big' }))?.command).toBe('npm run bench:ui -- --runs 8');
    expect(parseHeader(renderPlaceholder('bench:fleet', [], undefined, new Date()))).toEqual({ script: 'bench:fleet', command: 'npm run bench:fleet', placeholder: true });
    // By hand: no mark, or the mark pasted above a table with no commit and no load average.
    expect(parseHeader('# bench:ui\n\n| cold | 402 ms |\n')).toBeUndefined();
    expect(parseHeader(`${GENERATED_MARK}\n# \`bench:ui\`\n\nGenerated by \`npm run bench:ui -- --write\`.\n\n| cold | 402 ms |\n`)).toBeUndefined();
  });
});

describe('no measurement copied by hand into the README or docs/', () => {
  const pages = docPages(root).filter((p) => !p.startsWith(`${perfDir}/`));

  it.each(pages)('%s states no measured figure (the pages under docs/performance/ do)', (page) => {
    expect(handCopiedFigures(page, readPage(root, page))).toEqual([]);
  });

  it('catches a table of results, a pasted run and a figure in prose, and lets a listed limit pass', () => {
    const page = [
      'The first paint, measured:',
      '',
      '| run | time |',
      '|---|---|',
      '| cold | 402 ms |',
      '| setting | `--runs 8` |',
      '',
      '```',
      'bench:ui at commit abc, load average 2.4 2.1 1.9',
      '```',
      '',
      'The median of 8 warm runs was 230 ms.',
      'Bodies over 1 MiB are refused.',
    ].join('\n');
    expect(handCopiedFigures('docs/x.md', page, [['docs/x.md', '1 MiB', 'a limit']])).toEqual([
      'docs/x.md:5: table row with a measured figure: | cold | 402 ms |',
      'docs/x.md:12: figure in prose: The median of 8 warm runs was 230 ms.',
      "docs/x.md:9: a benchmark's output pasted in a code block: bench:ui at commit abc, load average 2.4 2.1 1.9",
    ]);
  });

  it('lists only references that are still in their pages', () => {
    for (const [page, excerpt] of PROSE_REFERENCES) expect(readPage(root, page)).toContain(excerpt);
  });
});
