// Routes that need no upstream: /healthz, /v1/models, the API key, the
// OpenAI error envelope for every client mistake.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { bearer, request, startDaemon, tokenFile } from './lib.mjs';

const KEY = 'sk-test-routes-1';
const SEED_ORDER = ['grok-3-fast', 'grok-4.1', 'grok-4.1-thinking',
	'grok-4-fast', 'grok-4-fast-expert', 'grok-4-expert', 'grok-4-heavy',
	'grok-imagine-0.9'];

function assertEnvelope(r, status, code) {
	assert.equal(r.status, status, r.body);
	assert.match(r.headers['content-type'], /^application\/json/);
	assert.ok(r.json && r.json.error, `no error envelope: ${r.body}`);
	const e = r.json.error;
	assert.equal(typeof e.message, 'string');
	assert.ok(e.message.length > 0);
	assert.equal(typeof e.type, 'string');
	assert.ok('param' in e && 'code' in e, r.body);
	if (code) assert.equal(e.code, code);
}

describe('routes with a normal and a super token', () => {
	let d;
	before(async () => {
		d = await startDaemon({ server: { api_keys: [KEY, 'sk-other'] },
			tokens: tokenFile(['tok-normal-a'], ['tok-super-a']) });
	});
	after(() => d.stop());

	test('/healthz answers without a key', async () => {
		const r = await request(d.url('/healthz'));
		assert.equal(r.status, 200);
		assert.deepEqual(r.json, { status: 'ok' });
	});

	test('/v1/models without a key is 401 in the OpenAI envelope', async () => {
		assertEnvelope(await request(d.url('/v1/models')), 401, 'invalid_api_key');
	});

	test('/v1/models with a wrong key is 401', async () => {
		assertEnvelope(await request(d.url('/v1/models'),
			{ headers: bearer('sk-wrong') }), 401, 'invalid_api_key');
		assertEnvelope(await request(d.url('/v1/models'),
			{ headers: { authorization: `Basic ${KEY}` } }), 401);
	});

	test('/v1/models lists the seed models in order, OpenAI shape', async () => {
		for (const key of [KEY, 'sk-other']) {
			const r = await request(d.url('/v1/models'), { headers: bearer(key) });
			assert.equal(r.status, 200);
			assert.equal(r.json.object, 'list');
			assert.deepEqual(r.json.data.map((m) => m.id), SEED_ORDER);
			for (const m of r.json.data) {
				assert.equal(m.object, 'model');
				assert.equal(m.owned_by, 'x-ai');
				assert.equal(typeof m.created, 'number');
			}
		}
	});

	test('/v1/models/<id> gives one model, or 404', async () => {
		const r = await request(d.url('/v1/models/grok-4.1'), { headers: bearer(KEY) });
		assert.equal(r.status, 200);
		assert.equal(r.json.id, 'grok-4.1');
		assertEnvelope(await request(d.url('/v1/models/gpt-4o'),
			{ headers: bearer(KEY) }), 404, 'model_not_found');
	});

	test('unknown route is 404, wrong method is 405 with Allow', async () => {
		assertEnvelope(await request(d.url('/v2/nothing'), { headers: bearer(KEY) }), 404);
		const r = await request(d.url('/v1/chat/completions'), { headers: bearer(KEY) });
		assertEnvelope(r, 405);
		assert.equal(r.headers.allow, 'POST');
	});

	test('CORS preflight on /v1/*', async () => {
		const r = await request(d.url('/v1/chat/completions'), { method: 'OPTIONS',
			headers: { origin: 'http://example.test',
				'access-control-request-method': 'POST' } });
		assert.equal(r.status, 204);
		assert.equal(r.headers['access-control-allow-origin'], '*');
	});

	test('chat: malformed JSON, wrong types, unknown model', async () => {
		const post = (body) => request(d.url('/v1/chat/completions'), { method: 'POST',
			headers: { ...bearer(KEY), 'content-type': 'application/json' }, body });
		let r = await post('{"model": "grok-4.1", "messages": [');
		assertEnvelope(r, 400, 'invalid_json');
		assert.match(r.json.error.message, /line 1/);
		r = await post('[1,2]');
		assertEnvelope(r, 400);
		r = await post('{"model": 5, "messages": [{"role":"user","content":"hi"}]}');
		assertEnvelope(r, 400);
		assert.equal(r.json.error.param, 'model');
		r = await post('{"model": "grok-4.1"}');
		assertEnvelope(r, 400);
		assert.equal(r.json.error.param, 'messages');
		r = await post('{"model": "gpt-4o", "messages": [{"role":"user","content":"hi"}]}');
		assertEnvelope(r, 404, 'model_not_found');
		assert.match(r.json.error.message, /\/v1\/models/);
	});

	test('a body over max_body_bytes is 413', async () => {
		const r = await request(d.url('/v1/chat/completions'), { method: 'POST',
			headers: { ...bearer(KEY), 'content-type': 'application/json',
				'content-length': String(21 * 1024 * 1024) },
			body: '{' });
		assertEnvelope(r, 413, 'request_too_large');
	});

	test('/metrics needs the key and speaks Prometheus text', async () => {
		assertEnvelope(await request(d.url('/metrics')), 401);
		const r = await request(d.url('/metrics'), { headers: bearer(KEY) });
		assert.equal(r.status, 200);
		assert.match(r.headers['content-type'], /^text\/plain/);
		assert.match(r.body, /^webproxyd_requests_total \d+$/m);
		assert.match(r.body, /^webproxyd_tokens\{type="ssoSuper"\} 1$/m);
		assert.match(r.body, /^webproxyd_workers 2$/m);
		assert.doesNotMatch(r.body, /tok-normal-a|tok-super-a|sk-test/);
	});
});

describe('model list follows the pools', () => {
	test('no super token: grok-4-heavy is left out', async () => {
		const d = await startDaemon({ tokens: tokenFile(['n1', 'n2']) });
		try {
			const r = await request(d.url('/v1/models'));
			assert.equal(r.status, 200);
			assert.deepEqual(r.json.data.map((m) => m.id),
				SEED_ORDER.filter((m) => m !== 'grok-4-heavy'));
		} finally { await d.stop(); }
	});

	test('grok disabled: no model, and chat says "Model not available"', async () => {
		const d = await startDaemon({ tokens: tokenFile(['n1'], ['s1']),
			projects: { grok: { enabled: false } } });
		try {
			const r = await request(d.url('/v1/models'));
			assert.deepEqual(r.json.data, []);
			const c = await request(d.url('/v1/chat/completions'), { method: 'POST',
				headers: { 'content-type': 'application/json' },
				body: JSON.stringify({ model: 'grok-4.1',
					messages: [{ role: 'user', content: 'hi' }] }) });
			assertEnvelope(c, 404, 'model_not_found');
			assert.match(c.json.error.message, /Model not available/);
		} finally { await d.stop(); }
	});

	test('configured models are listed after the seed ones', async () => {
		const raw = `server:\n  listen: "127.0.0.1:0"\n  workers: 1\n  data_dir: "DIR"\n` +
			`grok:\n  models:\n    - name: "grok-5-test"\n      upstream: "grok-5"\n` +
			`      mode: "MODEL_MODE_AUTO"\n`;
		const { tmpdir } = await import('./lib.mjs');
		const dir = tmpdir();
		const d = await startDaemon({ dir, rawConfig: raw.replace('DIR', dir),
			tokens: tokenFile(['n1']) });
		try {
			const r = await request(d.url('/v1/models'));
			assert.equal(r.json.data.at(-1).id, 'grok-5-test');
		} finally { await d.stop(); }
	});
});
