import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '@switchboard/devstack';
import { GENERATED_PAGES, NATS_CONF, renderPage } from '../docs.ts';
import { natsConfig } from '../nats-config.ts';

describe('docs', () => {
  it('have the configuration, error and identity tables of libs/protocol (run ./run docs when this fails)', async () => {
    expect(GENERATED_PAGES.length).toBeGreaterThan(0);
    for (const path of GENERATED_PAGES) {
      const text = readFileSync(path, 'utf8');
      expect(await renderPage(path, text), path).toBe(text);
    }
  });

  it('ships the NATS server configuration of the default prefix (run ./run docs when this fails)', () => {
    expect(readFileSync(NATS_CONF, 'utf8')).toBe(natsConfig('sb', 'password'));
  });
});

/** GitHub's anchors of a Markdown text's headings (outside code blocks), duplicates numbered. */
function anchors(text: string): Set<string> {
  const out = new Set<string>();
  const seen = new Map<string, number>();
  let fence = false;
  for (const line of text.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fence = !fence;
    const m = fence ? null : /^#{1,6} (.*)$/.exec(line);
    if (m === null) continue;
    const base = (m[1] ?? '')
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}_\- ]/gu, '')
      .replaceAll(' ', '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${String(n)}`);
  }
  return out;
}

/** The relative links `[…](target)` of a Markdown text, outside code blocks. */
function links(text: string): string[] {
  const out: string[] = [];
  let fence = false;
  for (const line of text.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fence = !fence;
    if (fence) continue;
    for (const m of line.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1] ?? '';
      if (!/^[a-z]+:/.test(target)) out.push(target);
    }
  }
  return out;
}

describe('the documentation', () => {
  const pages = [
    'README.md',
    ...readdirSync(join(ROOT, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`),
    'deploy/k8s/README.md',
    ...['gateway', 'media'].map((s) => `services/${s}/README.md`),
  ];

  it('the README is the quick start, the architecture and links (under 400 lines)', () => {
    expect(readFileSync(join(ROOT, 'README.md'), 'utf8').split('\n').length).toBeLessThan(400);
  });

  it('every relative link leads to a file there, and to a heading of it', () => {
    const broken: string[] = [];
    for (const page of pages) {
      const text = readFileSync(join(ROOT, page), 'utf8');
      for (const target of links(text)) {
        const [path = '', anchor] = target.split('#');
        const file = path === '' ? join(ROOT, page) : join(ROOT, dirname(page), path);
        if (!existsSync(file)) {
          broken.push(`${page}: ${target} (no ${relative(ROOT, file)})`);
          continue;
        }
        if (anchor !== undefined && file.endsWith('.md')) {
          if (!anchors(readFileSync(file, 'utf8')).has(anchor))
            broken.push(`${page}: ${target} (no heading #${anchor})`);
        }
      }
    }
    expect(broken).toEqual([]);
  });
});
