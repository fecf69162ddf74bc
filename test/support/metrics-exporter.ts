/**
 * A small Prometheus exporter that a test runs on 127.0.0.1: one gauge with a value per node
 * that the test sets, serves in the text exposition format, and can take away (no data).
 */
import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export class MetricsExporter {
  private readonly values = new Map<string, number>();
  private server?: Server;
  scrapes = 0;

  constructor(readonly metric: string, readonly help = 'a value per node, set by the test') {}

  set(node: string, value: number): this {
    this.values.set(node, value);
    return this;
  }

  remove(node: string): this {
    this.values.delete(node);
    return this;
  }

  /** host:port, for a scrape target. */
  get target(): string {
    const a = this.server?.address() as AddressInfo | undefined;
    if (!a) throw new Error('the exporter is not listening: call start() first');
    return `127.0.0.1:${a.port}`;
  }

  render(): string {
    const lines = [`# HELP ${this.metric} ${this.help}`, `# TYPE ${this.metric} gauge`];
    for (const [node, value] of [...this.values].sort(([a], [b]) => (a < b ? -1 : 1))) lines.push(`${this.metric}{node="${node}"} ${value}`);
    return `${lines.join('\n')}\n`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      this.scrapes += 1;
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(this.render());
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return this;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
