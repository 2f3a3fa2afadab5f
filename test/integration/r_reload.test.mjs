// SIGHUP: a live setting changes, a bad file keeps the old config serving,
// token.json edits are merged.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';

import { bearer, request, sleep, startDaemon, tokenEntry, tokenFile, yaml }
	from './lib.mjs';

function writeCfg(d, server) {
	fs.writeFileSync(d.cfgPath, yaml({
		server: { listen: `127.0.0.1:${d.port}`, workers: 2, data_dir: d.dir,
			log_level: 'info', ...server },
		projects: { grok: { enabled: true } },
	}));
}

async function until(fn, ms = 10000) {
	const t0 = Date.now();
	for (;;) {
		const v = await fn();
		if (v) return v;
		if (Date.now() - t0 > ms) throw new Error('condition never held');
		await sleep(50);
	}
}

test('SIGHUP applies a new api_keys list to every worker', async () => {
	const d = await startDaemon({ server: { api_keys: ['sk-old'] },
		tokens: tokenFile(['n1']) });
	try {
		const pidsBefore = d.children().map((c) => c.pid);
		writeCfg(d, { api_keys: ['sk-new'] });
		const from = d.log.length;
		d.signal('SIGHUP');
		await d.waitLog(/reload: generation 2/, 10000, from);
		// New connections land on new workers once the old ones drained.
		await until(async () => {
			for (let i = 0; i < 8; i++) {
				const r = await request(d.url('/v1/models'), { headers: bearer('sk-new') });
				if (r.status !== 200) return false;
			}
			return true;
		});
		for (let i = 0; i < 8; i++) {
			const r = await request(d.url('/v1/models'), { headers: bearer('sk-old') });
			assert.equal(r.status, 401);
		}
		// The old workers are gone, new ones serve; the janitor stays.
		await until(() => {
			const now = d.children().filter((c) => /worker/.test(c.args));
			return now.length === 2 && now.every((c) => !pidsBefore.includes(c.pid));
		});
	} finally { await d.stop(); }
});

test('a bad config on SIGHUP is logged and the old one keeps serving', async () => {
	const d = await startDaemon({ server: { api_keys: ['sk-keep'] },
		tokens: tokenFile(['n1']) });
	try {
		const workers = d.children().map((c) => c.pid).sort();
		fs.writeFileSync(d.cfgPath, 'server:\n  workers: many\n');
		const from = d.log.length;
		d.signal('SIGHUP');
		await d.waitLog(/reload: .*config\.yaml:2:\d+: server\.workers: .*keeping the running config/,
			10000, from);
		for (let i = 0; i < 6; i++) {
			const r = await request(d.url('/v1/models'), { headers: bearer('sk-keep') });
			assert.equal(r.status, 200);
		}
		assert.deepEqual(d.children().map((c) => c.pid).sort(), workers);
	} finally { await d.stop(); }
});

test('a token added to token.json by hand appears after SIGHUP', async () => {
	const d = await startDaemon({ tokens: tokenFile(['n1']) });
	try {
		let r = await request(d.url('/v1/models'));
		assert.ok(!r.json.data.some((m) => m.id === 'grok-4-heavy'));
		const tf = JSON.parse(fs.readFileSync(d.tokenPath, 'utf8'));
		tf.ssoSuper['s-added-by-hand'] = tokenEntry({ note: 'by hand' });
		fs.writeFileSync(d.tokenPath, JSON.stringify(tf, null, 2));
		const from = d.log.length;
		d.signal('SIGHUP');
		await d.waitLog(/token\.json: 1 added, 0 removed/, 10000, from);
		r = await request(d.url('/v1/models'));
		assert.ok(r.json.data.some((m) => m.id === 'grok-4-heavy'), r.body);
		// Removing it by hand takes it out again.
		delete tf.ssoSuper['s-added-by-hand'];
		await sleep(1100); // let the master's own write land first
		const now = JSON.parse(fs.readFileSync(d.tokenPath, 'utf8'));
		delete now.ssoSuper['s-added-by-hand'];
		fs.writeFileSync(d.tokenPath, JSON.stringify(now, null, 2));
		const from2 = d.log.length;
		d.signal('SIGHUP');
		await d.waitLog(/token\.json: 0 added, 1 removed/, 10000, from2);
		r = await request(d.url('/v1/models'));
		assert.ok(!r.json.data.some((m) => m.id === 'grok-4-heavy'));
	} finally { await d.stop(); }
});

test('a SIGHUP storm leaves the daemon serving', async () => {
	const d = await startDaemon({ tokens: tokenFile(['n1']) });
	try {
		for (let i = 0; i < 20; i++) { d.signal('SIGHUP'); await sleep(10); }
		await sleep(500);
		for (let i = 0; i < 10; i++)
			assert.equal((await request(d.url('/healthz'))).status, 200);
		assert.equal(d.proc.exitCode, null);
	} finally { await d.stop(); }
});
