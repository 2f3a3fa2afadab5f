// Fault injection (issue 7): bad files. A token.json corrupted by hand
// and loaded by SIGHUP, a token.json of 100,000 tokens, and the shipped
// config with every key given a value of the wrong type in turn.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { spawn } from 'node:child_process';

import { BIN, Daemon, SANITIZED, chat, metrics, readTokens, request, run, sleep,
	startFake, startWithFake, tmpdir, tokenEntry, tokenFile, tokenFileValid,
	tokenOf, until, workersOf, yaml } from './lib.mjs';

const ROOT = path.resolve(import.meta.dirname, '../..');
const HI = { model: 'grok-4.1', messages: [{ role: 'user', content: 'hi' }] };

test('a corrupted token.json on SIGHUP: error with its position, the live tokens kept', async (t) => {
	const toks = ['corrupt-live-a', 'corrupt-live-b'];
	const d = await startWithFake({ workers: 2, tokens: tokenFile(toks) }, ['-q', '1000']);
	try {
		for (let i = 0; i < 4; i++) assert.equal((await chat(d, HI)).status, 200);
		// The live counters the reloads must keep.
		const live = await until(() => {
			const tf = readTokens(d);
			return toks.every((k) => tokenOf(tf, k)?.remainingQueries > 0) && tf;
		}, 5000, 'charged counters persisted');
		const secret = 'corrupt-secret-token-value-0123456789';
		// [name, text, position the log must name (line:col, or line:)]
		const cases = [
			['trailing comma', '{\n  "ssoNormal": {\n    "x": {"status": "active",}\n  },\n  "ssoSuper": {}\n}\n', /token\.json:3:\d+: /],
			['cut in the middle', JSON.stringify(live, null, 2).slice(0, 300), /token\.json:\d+:\d+: /],
			['empty file', '', /token\.json:1:\d+: /],
			['binary garbage', '\x00\xff\xfe{\x01garbage', /token\.json:1:\d+: /],
			['a list at the top', '[1, 2, 3]\n', /token\.json:1:1: /],
			['an unterminated token key', `{\n  "ssoNormal": {\n    "${secret}\n`, /token\.json:[34]:\d+: /],
			['a wrong type inside', '{\n  "ssoNormal": {\n    "x": {"status": 5}\n  },\n  "ssoSuper": {}\n}\n', /token\.json:3:\d+: /],
		];
		const seen = [];
		for (const [name, text, pos] of cases) {
			await sleep(1100); // the master's own write of the last charge lands first
			fs.writeFileSync(d.tokenPath, text);
			const from = d.log.length;
			d.signal('SIGHUP');
			await d.waitLog(/reload: .*keeping the live tokens/, 5000, from);
			const line = d.log.slice(from).split('\n').find((l) => /keeping the live tokens/.test(l));
			assert.match(line, pos, `${name}: ${line}`);
			seen.push(`${name}: ${line.replace(/^.*reload: /, '')}`);
			// Still the same pool, serving, counters untouched.
			const m = await metrics(d);
			assert.equal(m['webproxyd_tokens{type="ssoNormal"}'], 2, name);
			for (let i = 0; i < 3; i++) assert.equal((await chat(d, HI)).status, 200, name);
		}
		assert.ok(!d.log.includes(secret), 'the error quoted a token');
		// What is on disk once the live state is saved again (the chats made
		// it dirty): valid, the live tokens; the broken edit is replaced.
		await until(() => tokenFileValid(d.tokenPath) &&
			Object.keys(readTokens(d).ssoNormal).sort().join() === toks.join(),
		5000, 'token.json rewritten from the live table');
		const tf = readTokens(d);
		for (const k of toks)
			assert.ok(tokenOf(tf, k).remainingQueries <= tokenOf(live, k).remainingQueries);
		const ex = await d.stop();
		assert.equal(ex.code, 0);
		assert.ok(tokenFileValid(d.tokenPath));
		t.diagnostic(seen.join('\n'));
	} finally { await d.stop(); }
});

test('token.json with 100,000 tokens: starts, serves, persists', async (t) => {
	const N = 100000;
	const dir = tmpdir();
	const tf = { ssoNormal: {}, ssoSuper: {} };
	for (let i = 0; i < N; i++)
		tf[i % 10 ? 'ssoNormal' : 'ssoSuper'][`big-pool-${String(i).padStart(6, '0')}-${'x'.repeat(120)}`] =
			tokenEntry({ remainingQueries: 50 + (i % 30), tags: i % 7 ? [] : ['seven'] });
	fs.mkdirSync(path.join(dir, 'accounts/grok'), { recursive: true });
	const text = JSON.stringify(tf, null, 2);
	fs.writeFileSync(path.join(dir, 'accounts/grok/token.json'), text);
	let d, fake;
	try {
		// One fewer than the file holds: refused, with the reason.
		const small = path.join(dir, 'small.yaml');
		fs.writeFileSync(small, `server:\n  listen: "127.0.0.1:0"\n  data_dir: "${dir}"\n` +
			`grok:\n  max_tokens: ${N - 1}\n`);
		const r = run(['-t', '-c', small]);
		assert.equal(r.status, 1);
		assert.match(r.stderr, new RegExp(`${N} tokens, more than grok\\.max_tokens \\(${N - 1}\\)`));
		// As startWithFake, but the sanitizer build may take longer than
		// startDaemon's 10 s to load it.
		fake = await startFake(['-q', '1000000']);
		const cfgPath = path.join(dir, 'config.yaml');
		fs.writeFileSync(cfgPath, yaml({
			server: { listen: '127.0.0.1:0', workers: 2, data_dir: dir, log_level: 'info', api_keys: [] },
			projects: { grok: { enabled: true } },
			grok: { upstream_url: fake.url, assets_url: fake.url, max_tokens: N },
		}));
		const t0 = Date.now();
		const proc = spawn(BIN, ['-f', '-c', cfgPath, '-p', path.join(dir, 'webproxyd.pid')],
			{ stdio: ['ignore', 'pipe', 'pipe'] });
		d = new Daemon(proc, dir, cfgPath);
		await d.ready(120000);
		const startMs = Date.now() - t0;
		const m = await metrics(d);
		assert.equal(m['webproxyd_tokens{type="ssoNormal"}'], N * 0.9);
		assert.equal(m['webproxyd_tokens{type="ssoSuper"}'], N * 0.1);
		const t1 = Date.now();
		for (let i = 0; i < 20; i++) assert.equal((await chat(d, HI)).status, 200);
		const chatMs = (Date.now() - t1) / 20;
		const ms = await request(d.url('/v1/models'));
		assert.ok(ms.json.data.some((x) => x.id === 'grok-4-heavy'), 'super tokens count');
		// The master under traffic: each chat dirties the table, so it
		// writes the 40 MB token.json over and over. A killed worker and a
		// SIGHUP must still be seen to within about a second.
		let busy = true;
		const lane = (async () => { while (busy) await chat(d, HI).catch(() => {}); })();
		await sleep(3000);
		const respawnMs = [];
		for (let k = 0; k < 2; k++) {
			const w = workersOf(d)[0];
			const tk = Date.now();
			process.kill(w.pid, 'SIGKILL');
			await until(() => workersOf(d).some((x) => x.n === w.n && x.pid !== w.pid),
				60000, 'the worker respawned', 5);
			respawnMs.push(Date.now() - tk);
			await sleep(2500); // not a quick death: no backoff
		}
		const from = d.log.length;
		const th = Date.now();
		d.signal('SIGHUP');
		await d.waitLog(/reload: config unchanged|reload: generation/, 60000, from);
		const hupMs = Date.now() - th;
		busy = false;
		await lane;
		const t2 = Date.now();
		const ex = await d.stop();
		const stopMs = Date.now() - t2;
		assert.equal(ex.code, 0);
		const after = readTokens(d);
		assert.equal(Object.keys(after.ssoNormal).length, N * 0.9);
		assert.equal(Object.keys(after.ssoSuper).length, N * 0.1);
		assert.deepEqual(tokenOf(after, `big-pool-000007-${'x'.repeat(120)}`).tags, ['seven']);
		// Bounds with room for a loaded machine; the figures are reported.
		if (!SANITIZED) {
			assert.ok(startMs < 15000, `start took ${startMs} ms`);
			assert.ok(stopMs < 20000, `stop took ${stopMs} ms`);
		}
		t.diagnostic(`100,000 tokens (${(text.length / 1e6).toFixed(1)} MB): ready ${startMs} ms ` +
			`after spawn (fake included), a chat ${chatMs.toFixed(1)} ms, stop with the write ` +
			`${stopMs} ms; under traffic a killed worker was back after ${respawnMs.join(', ')} ms ` +
			`and a SIGHUP done after ${hupMs} ms`);
		// The master's loop stays responsive (DESIGN.md §1): a write of
		// token.json must not hold up the reaping of a dead worker.
		if (!SANITIZED)
			assert.ok(Math.max(...respawnMs) < 1500, `a killed worker came back only after ` +
				`${respawnMs.join(', ')} ms: the master was busy writing token.json`);
	} finally {
		if (d) await d.stop();
		if (fake) await fake.stop();
		fs.rmSync(dir, { recursive: true, force: true });
	}
});

// ---- the shipped config, each key wrong in turn ----------------------

// Every leaf key of a YAML file of our shape: [{path, line (1-based),
// indent, value (text after the colon, '' for a block), block: lines of a
// block list after it}].
function configKeys(text) {
	const lines = text.split('\n');
	const out = [];
	const stack = []; // [{indent, name}]
	const content = (l) => l.trim() !== '' && !l.trim().startsWith('#');
	for (let i = 0; i < lines.length; i++) {
		const m = lines[i].match(/^(\s*)([A-Za-z_]+):\s*(.*?)\s*$/);
		if (!m || !content(lines[i])) continue;
		const indent = m[1].length;
		while (stack.length && stack.at(-1).indent >= indent) stack.pop();
		const keyPath = [...stack.map((s) => s.name), m[2]].join('.');
		let j = i + 1;
		while (j < lines.length && !content(lines[j])) j++;
		const nextIndent = j < lines.length ? lines[j].match(/^\s*/)[0].length : 0;
		if (m[3] === '' && j < lines.length && nextIndent > indent) {
			if (/^\s*- /.test(lines[j])) {
				const block = [];
				for (let k = j; k < lines.length && (/^\s*- /.test(lines[k]) || !content(lines[k])); k++)
					if (content(lines[k])) block.push(k);
				out.push({ path: keyPath, line: i + 1, indent, value: '', block });
			} else stack.push({ indent, name: m[2] });
			continue;
		}
		out.push({ path: keyPath, line: i + 1, indent, value: m[3], block: [] });
	}
	return out;
}

// Wrong values for a key, by the type its shipped value shows.
function wrongValues(k) {
	const v = k.value.replace(/\s+#.*$/, '');
	if (k.block.length || v === '[]') return ['{x: 1}', '"just one string"'];
	const out = ['[1, 2]', '{x: 1}'];
	if (/^-?\d+$/.test(v)) out.push('lots', '1.5', '99999999999999999999', '-1x');
	else if (/^(true|false)$/.test(v)) out.push('maybe', '2');
	return out;
}

test('webproxyd -t: each key of conf/config.yaml with a wrong-typed value names that key', (t) => {
	const dir = tmpdir();
	const shipped = fs.readFileSync(path.join(ROOT, 'conf/config.yaml'), 'utf8');
	const keys = configKeys(shipped);
	// Every key of the key table (shared/cfg_keys.h) is in the file, but
	// grok.models, which is shown commented out (checked below).
	const table = fs.readFileSync(path.join(ROOT, 'shared/cfg_keys.h'), 'utf8');
	const want = [];
	for (const [sect, prefix] of [['SERVER', 'server'], ['PROJECTS_GROK', 'projects.grok'], ['GROK', 'grok']]) {
		const body = table.match(new RegExp(`#define CFG_KEYS_${sect}\\(X\\)([\\s\\S]*?)\n\n`))[1];
		for (const m of body.matchAll(/\bX\((\w+),/g)) want.push(`${prefix}.${m[1]}`);
	}
	assert.ok(want.length >= 39, `key table: ${want}`);
	assert.deepEqual(keys.map((k) => k.path).sort(), want.filter((p) => p !== 'grok.models').sort());
	const f = path.join(dir, 'wrong.yaml');
	let runs = 0;
	const check = (text, line, keyPath, what) => {
		fs.writeFileSync(f, text);
		const r = run(['-t', '-c', f, '-d', dir]);
		runs++;
		assert.equal(r.status, 1, `${what}: accepted\n${r.stdout}${r.stderr}`);
		const first = r.stderr.split('\n')[0];
		const esc = keyPath.replace(/[.[\]]/g, '\\$&');
		// A list key may be named with the index of its bad entry.
		assert.match(first, new RegExp(`^${f.replace(/[.]/g, '\\.')}:${line}:\\d+: ${esc}(\\[\\d+\\])?: \\S`),
			`${what}: ${first}`);
	};
	const lines = shipped.split('\n');
	for (const k of keys) {
		for (const wrong of wrongValues(k)) {
			const copy = lines.slice();
			copy[k.line - 1] = `${' '.repeat(k.indent)}${k.path.split('.').at(-1)}: ${wrong}`;
			for (const b of k.block) copy[b] = '';
			check(copy.join('\n'), k.line, k.path, `${k.path}: ${wrong}`);
		}
		if (k.block.length) {
			// A wrong entry inside the block list.
			const copy = lines.slice();
			copy[k.block[0]] = copy[k.block[0]].replace(/- .*/, '- [nested]');
			check(copy.join('\n'), k.block[0] + 1, `${k.path}[0]`, `${k.path}[0]: [nested]`);
		}
	}
	// The commented-out model table: the key itself, then each key of one
	// entry (CFG_KEYS_MODEL) wrong in turn.
	const withModels = (m) => `${shipped}\n`.replace(/\ngrok:\n/, `\ngrok:\n  models: ${m}\n`);
	const at = withModels('5').split('\n').findIndex((l) => l.startsWith('  models: ')) + 1;
	for (const m of ['5', '{x: 1}', '[5]', '"grok-4"'])
		check(withModels(m), at, 'grok.models', `grok.models: ${m}`);
	const good = { name: '"k-model"', upstream: '"grok-3"', mode: '"MODEL_MODE_FAST"',
		rate_limit_model: '"grok-3"', cost: '1', pool: 'normal', video: 'false' };
	const modelKeys = [...table.match(/#define CFG_KEYS_MODEL\(X\)([\s\S]*?)\n\n/)[1]
		.matchAll(/\bX\((\w+),/g)].map((m) => m[1]);
	assert.deepEqual(modelKeys.sort(), Object.keys(good).sort());
	for (const mk of modelKeys) {
		const bad = { cost: ['free', '[1]', '0'], video: ['maybe', '[1]'], pool: ['deep', '[1]'] }[mk] ??
			['[1]', '{x: 1}'];
		for (const b of bad) {
			const entry = Object.entries({ ...good, [mk]: b }).map(([k, v]) => `${k}: ${v}`).join(', ');
			check(withModels(`[{${entry}}]`), at, `grok.models[0].${mk}`, `grok.models[0].${mk}: ${b}`);
		}
	}
	t.diagnostic(`${keys.length} keys, ${runs} wrong files, each refused naming its key`);
});
