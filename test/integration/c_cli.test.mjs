// The command line: -t, --hash-password, -V, -s, refusing an open
// network listener without API keys, a broken token.json.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { BIN, run, startDaemon, tmpdir, yaml } from './lib.mjs';

const ROOT = path.resolve(import.meta.dirname, '../..');

test('-t accepts the shipped config', () => {
	const dir = tmpdir();
	const r = run(['-t', '-c', path.join(ROOT, 'conf/config.yaml'), '-d', dir]);
	assert.equal(r.status, 0, r.stderr);
	assert.match(r.stdout, /config\.yaml: ok/);
});

test('-t rejects bad files with file:line:col: key: problem', () => {
	const dir = tmpdir();
	const cases = [
		['server:\n  workers: lots\n', /:2:\d+: server\.workers: /],
		['server:\n  listen: "127.0.0.1:3000"\n  bogus: 1\n', /:3:3: server\.bogus: /],
		['grok:\n  image_mode: "jpeg"\n', /:2:\d+: grok\.image_mode: /],
		['grok:\n  proxy_pool_interval: 1\n', /:2:\d+: grok\.proxy_pool_interval: /],
		['server:\n  listen: [\n', /:\d+:\d+: /],
	];
	for (const [text, re] of cases) {
		const f = path.join(dir, 'bad.yaml');
		fs.writeFileSync(f, text);
		const r = run(['-t', '-c', f, '-d', dir]);
		assert.equal(r.status, 1, `accepted:\n${text}`);
		assert.match(r.stderr, re, text);
		assert.ok(r.stderr.startsWith(f), r.stderr);
	}
});

test('-t on a missing file says so', () => {
	const r = run(['-t', '-c', '/nonexistent/config.yaml']);
	assert.equal(r.status, 1);
	assert.match(r.stderr, /nonexistent\/config\.yaml/);
});

test('refuses to listen on the network without API keys', () => {
	const dir = tmpdir();
	const f = path.join(dir, 'c.yaml');
	fs.writeFileSync(f, yaml({ server: { listen: '0.0.0.0:0', data_dir: dir } }));
	const r = run(['-f', '-c', f]);
	assert.equal(r.status, 1);
	assert.match(r.stderr, /api_keys is empty/);
	assert.equal(run(['-t', '-c', f]).status, 1);
});

test('a broken token.json stops the start with its position and stays as it was', () => {
	const dir = tmpdir();
	const tp = path.join(dir, 'accounts/grok/token.json');
	fs.mkdirSync(path.dirname(tp), { recursive: true });
	const broken = '{\n  "ssoNormal": {\n    "abc": {"status": "active",}\n  }\n}\n';
	fs.writeFileSync(tp, broken);
	const f = path.join(dir, 'c.yaml');
	fs.writeFileSync(f, yaml({ server: { listen: '127.0.0.1:0', data_dir: dir } }));
	const r = run(['-f', '-c', f]);
	assert.equal(r.status, 1);
	assert.match(r.stderr, /token\.json:3:\d+/);
	assert.equal(fs.readFileSync(tp, 'utf8'), broken);
	assert.equal(run(['-t', '-c', f]).status, 1);
});

test('--hash-password prints an argon2id hash and ignores one newline', () => {
	const a = run(['--hash-password'], 'secret\n');
	assert.equal(a.status, 0, a.stderr);
	assert.match(a.stdout, /^\$argon2id\$v=19\$m=\d+,t=\d+,p=1\$\S+\n$/);
	assert.equal(run(['--hash-password'], '').status, 1);
});

test('-V and -h', () => {
	assert.match(run(['-V']).stdout, /^webproxyd \d+\.\d+/);
	assert.match(run(['-h']).stdout, /usage: webproxyd/);
	assert.equal(run(['-x']).status, 1);
	assert.equal(run(['-w', '1000']).status, 1);
});

test('-s reload and -s stop find the master through the pid file', async () => {
	const d = await startDaemon({ workers: 1 });
	const pidfile = path.join(d.dir, 'webproxyd.pid');
	assert.equal(fs.readFileSync(pidfile, 'utf8').trim(), String(d.pid));
	const from = d.log.length;
	assert.equal(run(['-s', 'reload', '-c', d.cfgPath, '-p', pidfile]).status, 0);
	await d.waitLog(/reload: /, 10000, from);
	assert.equal(run(['-s', 'stop', '-c', d.cfgPath, '-p', pidfile]).status, 0);
	const ex = await d.exited;
	assert.equal(ex.code, 0);
	assert.equal(fs.existsSync(pidfile), false);
	assert.equal(run(['-s', 'stop', '-p', pidfile]).status, 1);
	assert.ok(BIN);
});
