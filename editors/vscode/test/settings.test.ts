import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { settingsFromConfiguration, statusText } from '../src/settings';

const manifest = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8'));
const properties: Record<string, { default: unknown }> = manifest.contributes.configuration.properties;

test('the defaults of package.json become the settings object the server documents', () => {
  const keys = Object.keys(properties)
    .map((key) => key.replace(/^hearth\./, ''))
    .filter((key) => key !== 'serverPath');
  const settings = settingsFromConfiguration(keys, (key) => properties[`hearth.${key}`].default);
  assert.deepEqual(settings, {
    model: 'default',
    backend: {
      kind: 'sidecar',
      threads: 0,
      contextSize: 8192,
      gpuLayers: 'auto',
      parallel: 4,
      idleTimeoutSecs: 600,
      openaiUrl: '',
      openaiModel: '',
      openaiApiKeyEnv: 'HEARTH_OPENAI_API_KEY',
      openaiFim: 'auto',
      openaiTimeoutSecs: 120,
      openaiRetries: 2,
      openaiCaFile: '',
    },
    completion: { enabled: true, debounceMs: 40, maxTokens: 64, multiline: 'auto' },
    context: { budgetTokens: 0 },
    review: { enabled: true, minSeverity: 'warning', maxFindings: 20 },
    usage: {
      enabled: true,
      cloudInputPerMtok: 3.0,
      cloudCachedInputPerMtok: 0.3,
      cloudOutputPerMtok: 15.0,
      watts: 150.0,
      pricePerKwh: 0.3,
      hardwareCost: 0.0,
    },
    disabledLanguages: [],
  });
});

test('every contributed setting has a type, a default and a description', () => {
  for (const [key, property] of Object.entries(properties) as [string, Record<string, unknown>][]) {
    assert.ok(property.type, `${key} has no type`);
    assert.ok('default' in property, `${key} has no default`);
    assert.ok(typeof property.description === 'string' && property.description.length > 10, `${key} has no description`);
  }
});

test('undefined values are left out', () => {
  assert.deepEqual(settingsFromConfiguration(['a.b', 'a.c', 'd'], (key) => (key === 'a.c' ? 1 : undefined)), {
    a: { c: 1 },
  });
});

test('status text shows model, state and latency', () => {
  assert.equal(
    statusText({ state: 'ready', model: 'SmolLM2-135M-Instruct', message: null, lastLatencyMs: 181.6 }),
    '$(flame) SmolLM2-135M-Instruct · 182 ms',
  );
  assert.equal(
    statusText({ state: 'loading', model: 'm', message: null, lastLatencyMs: null }),
    '$(loading~spin) m · loading',
  );
});
