// Pure helpers (no `vscode` import), kept apart so that they are easy to read and test.

export interface HearthStatus {
  state: 'starting' | 'loading' | 'ready' | 'error';
  model: string;
  message: string | null;
  lastLatencyMs: number | null;
}

/**
 * Builds the nested settings object from dotted keys: `completion.maxTokens` → `{ completion: { maxTokens } }`.
 * Keys whose value is undefined are left out.
 */
export function settingsFromConfiguration(keys: string[], get: (key: string) => unknown): Record<string, unknown> {
  const settings: Record<string, unknown> = {};
  for (const key of keys) {
    const value = get(key);
    if (value === undefined) {
      continue;
    }
    const parts = key.split('.');
    let node = settings;
    for (const part of parts.slice(0, -1)) {
      if (typeof node[part] !== 'object' || node[part] === null) {
        node[part] = {};
      }
      node = node[part] as Record<string, unknown>;
    }
    node[parts[parts.length - 1]] = value;
  }
  return settings;
}

const STATE_ICONS: Record<string, string> = {
  starting: '$(loading~spin)',
  loading: '$(loading~spin)',
  ready: '$(flame)',
  error: '$(error)',
};

/** Status bar text: `$(flame) SmolLM2-135M-Instruct · 180 ms`. */
export function statusText(status: HearthStatus): string {
  const icon = STATE_ICONS[status.state] ?? '$(question)';
  const parts = [status.model || 'Hearth'];
  if (status.state !== 'ready') {
    parts.push(status.state);
  }
  if (typeof status.lastLatencyMs === 'number') {
    parts.push(`${Math.round(status.lastLatencyMs)} ms`);
  }
  return `${icon} ${parts.join(' · ')}`;
}

export function statusTooltip(status: HearthStatus): string {
  const lines = [`Hearth: ${status.state}`, `Model: ${status.model || 'n/a'}`];
  if (typeof status.lastLatencyMs === 'number') {
    lines.push(`Last completion: ${Math.round(status.lastLatencyMs)} ms`);
  }
  if (status.message) {
    lines.push(status.message);
  }
  lines.push('Click for server statistics.');
  return lines.join('\n');
}
