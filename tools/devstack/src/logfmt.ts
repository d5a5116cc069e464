/** Pretty-print the services' pino JSON lines for a terminal (anything else passes through). */
const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
const OMIT = new Set(['level', 'time', 'service', 'instanceId', 'msg', 'pid', 'hostname']);

export function formatLogLine(label: string, line: string): string {
  const tag = label.padEnd(8);
  if (!line.startsWith('{')) return `${tag} ${line}`;
  try {
    const rec = JSON.parse(line) as Record<string, unknown>;
    const level =
      typeof rec['level'] === 'number' ? (LEVELS[rec['level']] ?? String(rec['level'])) : '?';
    const time = typeof rec['time'] === 'string' ? rec['time'].slice(11, 23) : '';
    const extra = Object.entries(rec)
      .filter(([k]) => !OMIT.has(k))
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    const msg = typeof rec['msg'] === 'string' ? rec['msg'] : '';
    return `${tag} ${time} ${level.padEnd(5)} ${msg}${extra === '' ? '' : `  ${extra}`}`;
  } catch {
    return `${tag} ${line}`;
  }
}
