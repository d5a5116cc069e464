// Renders GET /api/status of the gateway's ops port (see libs/protocol http.ts for its shape).
// Plain ES module, no build.
const tbody = document.querySelector('#status tbody');
const summary = document.querySelector('#summary');

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

async function refresh() {
  try {
    const res = await fetch('/api/status', {
      cache: 'no-store',
      signal: AbortSignal.timeout(5000),
    });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const status = await res.json();
    tbody.replaceChildren(
      ...status.services.map((s) => {
        const tr = document.createElement('tr');
        tr.dataset.service = s.service;
        tr.append(
          cell(s.service),
          s.ok ? cell('ready', 'ok') : cell(`down: ${s.error.name}`, 'down'),
          cell(s.ok ? s.instance.instanceId : '—'),
          cell(s.ok ? s.instance.version : '—'),
          cell(s.ok ? `${s.rttMs} ms` : '—'),
        );
        return tr;
      }),
    );
    const up = status.services.filter((s) => s.ok).length;
    summary.textContent = `${up} of ${status.services.length} services answering (gateway ${status.gateway.instanceId})`;
    document.body.dataset.state = up === status.services.length ? 'ready' : 'degraded';
  } catch (err) {
    summary.textContent = `status unavailable: ${err.message}`;
    document.body.dataset.state = 'error';
  }
}

await refresh();
setInterval(() => void refresh(), 5000);
