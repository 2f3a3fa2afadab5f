// Fault injection (issue 7): the janitor killed in the middle of a
// sweep, SIGHUP storms under load, and the two stops (SIGTERM fast,
// SIGQUIT graceful) with streams running. Each test checks what the
// clients saw and that the cache, token.json and the processes are in
// order afterwards.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { alive, chat, metrics, readTokens, request, sleep, startDaemon,
	startWithFake, streamChat, tmpdir, tokenFile, tokenFileValid, until,
	workersOf, yaml } from './lib.mjs';

const stream = (n, ms) => ({ model: 'grok-4.1', stream: true,
	messages: [{ role: 'user', content: `hi [interval=${ms}] [tokens=${n}]` }] });
const SHORT = { model: 'grok-4.1', messages: [{ role: 'user', content: 'hi [tokens=1]' }] };

test('kill -9 of the janitor during a sweep: respawned, the cache still trimmed', async (t) => {
	const dir = tmpdir();
	const img = path.join(dir, 'data/temp/image');
	fs.mkdirSync(img, { recursive: true });
	// 40,000 files of 100 bytes (4 MB) against a 1 MiB cap: the newest
	// 10,485 must stay. Names carry the age order; mtimes are one second
	// apart.
	const N = 40000, SIZE = 100, KEEP = Math.floor(1048576 / SIZE);
	const name = (i) => `${i.toString(16).padStart(32, '0')}.jpg`;
	const buf = Buffer.alloc(SIZE, 0x78);
	for (let i = 0; i < N; i++) {
		const f = path.join(img, name(i));
		fs.writeFileSync(f, buf);
		fs.utimesSync(f, 1e9 + i, 1e9 + i);
	}
	// Bystanders: a download in progress, a file beside the cache.
	fs.writeFileSync(path.join(img, '.tmp-inprogress'), 'partial');
	fs.writeFileSync(path.join(dir, 'data/temp/keep.txt'), 'not the cache');
	const d = await startDaemon({ dir, workers: 1, tokens: tokenFile(['jan-tok']),
		grok: { image_cache_max_size_mb: 1 } });
	try {
		const count = () => fs.readdirSync(img).length;
		const kills = [];
		for (let k = 0; k < 3; k++) {
			const jan = await until(() => d.children().find((c) => /janitor/.test(c.args) &&
				!kills.some((x) => x.pid === c.pid)), 10000, `janitor #${k + 1}`, 10);
			const start = count();
			// Kill it once it has deleted 1,000 more files: mid-sweep.
			await until(() => count() <= start - 1000, 20000, 'the janitor deleting', 10);
			const left = count();
			if (left <= KEEP + 1) break; // it finished before we could
			process.kill(jan.pid, 'SIGKILL');
			kills.push({ pid: jan.pid, left });
			await d.waitLog(new RegExp(`janitor \\(pid ${jan.pid}\\) killed by signal 9`), 5000);
		}
		assert.ok(kills.length >= 1, 'the janitor was never caught mid-sweep');
		// Bounds for a loaded machine (a readdir of 40,000 names is slow too).
		await until(() => count() <= KEEP + 1, 40000, 'the cache trimmed to 1 MiB', 100);
		const files = fs.readdirSync(img).filter((f) => !f.startsWith('.')).sort();
		// Oldest first: exactly the newest KEEP are left.
		assert.equal(files.length, KEEP);
		assert.equal(files[0], name(N - KEEP));
		assert.equal(files.at(-1), name(N - 1));
		assert.ok(fs.existsSync(path.join(img, '.tmp-inprogress')), 'a fresh temp file is kept');
		assert.equal(fs.readFileSync(path.join(dir, 'data/temp/keep.txt'), 'utf8'), 'not the cache');
		const jan = d.children().filter((c) => /janitor/.test(c.args));
		assert.equal(jan.length, 1, 'one janitor runs');
		assert.ok(!kills.some((k) => k.pid === jan[0].pid));
		const m = await until(async () => {
			const x = await metrics(d);
			return x['webproxyd_cache_files{kind="image"}'] === KEEP ? x : false;
		}, 15000, 'the janitor to publish the trimmed size');
		assert.ok(m['webproxyd_cache_bytes{kind="image"}'] <= 1048576);
		assert.equal(m.webproxyd_respawns_total, kills.length);
		assert.equal((await request(d.url('/healthz'))).status, 200);
		assert.ok(tokenFileValid(d.tokenPath));
		t.diagnostic(`janitor killed ${kills.length} times mid-sweep, files left at each: ` +
			kills.map((k) => k.left).join(', '));
	} finally {
		await d.stop();
		fs.rmSync(dir, { recursive: true, force: true });
	}
});

// Load for a storm: nstreams long streams, and lanes of short requests
// (healthz and short chats) until stop() is called; resolves what each saw.
function load(d, nstreams, n, ms) {
	const ss = Array.from({ length: nstreams }, () => streamChat(d, stream(n, ms), {}, 60000));
	let stopped = false;
	const short = { ok: 0, bad: [] };
	const lanes = Array.from({ length: 4 }, (_, i) => (async () => {
		while (!stopped) {
			try {
				const r = i % 2 ? await request(d.url('/healthz')) : await chat(d, SHORT);
				if (r.status === 200) short.ok++;
				else short.bad.push(`${r.status} ${r.body.slice(0, 200)}`);
			} catch (e) { short.bad.push(e.code || e.message); }
		}
	})());
	return {
		ss,
		async stop() { stopped = true; await Promise.all(lanes); return { short, rs: await Promise.all(ss) }; },
	};
}

function assertAllDone(rs) {
	rs.forEach((r, i) => {
		assert.equal(r.bad, null);
		assert.ok(r.done, `stream ${i} broken (${r.error}):\n${r.text.slice(-300)}`);
		assert.ok(!r.events.some((e) => e.error), `stream ${i}: error event`);
	});
}

for (const variant of ['same config', 'a changed config each time']) {
	test(`SIGHUP storm, 50 in a second, ${variant}, under load: nothing broken`, async (t) => {
		const toks = ['hup-a', 'hup-b', 'hup-c'];
		const d = await startWithFake({ workers: 2, tokens: tokenFile(toks) }, ['-q', '1000000']);
		try {
			const cfg = (level) => yaml({
				server: { listen: `127.0.0.1:${d.port}`, workers: 2, data_dir: d.dir,
					log_level: level, api_keys: [] },
				projects: { grok: { enabled: true } },
				grok: { upstream_url: d.fake.url, assets_url: d.fake.url },
			});
			const L = load(d, 40, 60, 50); // 3 s streams
			await Promise.all(L.ss.map((s) => s.firstByte));
			const from = d.log.length;
			const t0 = Date.now();
			for (let i = 0; i < 50; i++) {
				if (variant !== 'same config') {
					const tmp = `${d.cfgPath}.new`;
					fs.writeFileSync(tmp, cfg(i % 2 ? 'info' : 'notice'));
					fs.renameSync(tmp, d.cfgPath);
				}
				d.signal('SIGHUP');
				// One every 20 ms: 50 within the second.
				await sleep(Math.max(0, t0 + (i + 1) * 19.5 - Date.now()));
			}
			const stormMs = Date.now() - t0;
			await sleep(500);
			const { short, rs } = await L.stop();
			assertAllDone(rs);
			assert.deepEqual(short.bad, [], `short requests failed during the storm`);
			assert.ok(short.ok > 0);
			assert.equal(d.proc.exitCode, null, 'the master runs');
			// Settled: two workers of the last generation and the janitor.
			await until(() => workersOf(d).length === 2 &&
				d.children().filter((c) => /janitor/.test(c.args)).length === 1,
			30000, 'old workers drained and gone');
			for (let i = 0; i < 10; i++) assert.equal((await chat(d, SHORT)).status, 200);
			const m = await metrics(d);
			assert.equal(m.webproxyd_respawns_total, 0, 'no child died');
			assert.doesNotMatch(d.log.slice(from), /killed by signal|exited with status [1-9]|did not stop in time/);
			assert.ok(tokenFileValid(d.tokenPath));
			assert.deepEqual(Object.keys(readTokens(d).ssoNormal).sort(), toks);
			const gens = (d.log.slice(from).match(/reload: generation \d+/g) || []).length;
			t.diagnostic(`50 SIGHUPs in ${stormMs} ms: ${m.webproxyd_reloads_total} reloads, ` +
				`${gens} new generations; ${rs.length} streams complete, ${short.ok} short requests ok`);
		} finally { await d.stop(); }
	});
}

test('SIGTERM with 40 streams running: cut at once, exit 0, token.json written', async (t) => {
	const toks = ['term-a', 'term-b'];
	const d = await startWithFake({ workers: 2, tokens: tokenFile(toks),
		server: { drain_timeout: 5 } }, ['-q', '1000000']);
	try {
		const ss = Array.from({ length: 40 }, () => streamChat(d, stream(100, 50), {}, 30000));
		await Promise.all(ss.map((s) => s.firstByte));
		fs.unlinkSync(d.tokenPath); // the master must write it at stop
		const kids = d.children().map((c) => c.pid);
		const t0 = Date.now();
		const ex = await d.stop('SIGTERM');
		const stopMs = Date.now() - t0;
		assert.equal(ex.code, 0, d.log.slice(-2000));
		assert.ok(stopMs < 5000 + 5000, `stopped in ${stopMs} ms`);
		const rs = await Promise.all(ss);
		for (const r of rs) {
			assert.notEqual(r.error, 'hang');
			assert.equal(r.bad, null, 'only whole events before the cut');
			// Cut (documented: a fast stop cuts streams) or finished.
			assert.ok(r.cut || r.done);
			assert.ok(r.end - t0 < stopMs + 1000, `closed ${r.end - t0} ms after SIGTERM`);
		}
		const cut = rs.filter((r) => r.cut).length;
		for (const p of kids) assert.equal(alive(p), false);
		assert.ok(tokenFileValid(d.tokenPath), 'token.json written at stop');
		assert.deepEqual(Object.keys(readTokens(d).ssoNormal).sort(), toks);
		assert.equal((fs.statSync(d.tokenPath).mode & 0o777), 0o600);
		const errEvents = rs.filter((r) => r.events.some((e) => e.error)).length;
		t.diagnostic(`SIGTERM: exit in ${stopMs} ms; ${cut} of 40 streams cut ` +
			`(${errEvents} with an error event), ${40 - cut} complete`);
	} finally { await d.stop(); }
});

test('SIGQUIT with 40 streams running: every stream finishes, then exit 0', async (t) => {
	const toks = ['quit-a', 'quit-b'];
	const d = await startWithFake({ workers: 2, tokens: tokenFile(toks),
		server: { drain_timeout: 20 } }, ['-q', '1000000']);
	try {
		const ss = Array.from({ length: 40 }, () => streamChat(d, stream(60, 50), {}, 30000));
		await Promise.all(ss.map((s) => s.firstByte));
		const t0 = Date.now();
		d.signal('SIGQUIT');
		// New connections are refused (or closed) while the old drain.
		await sleep(300);
		const rs = await Promise.all(ss);
		assertAllDone(rs);
		const ex = await d.stop();
		const stopMs = Date.now() - t0;
		assert.equal(ex.code, 0, d.log.slice(-2000));
		assert.ok(stopMs < 20000, `stopped in ${stopMs} ms`);
		assert.match(d.log, /graceful stop/);
		assert.ok(tokenFileValid(d.tokenPath));
		const tf = readTokens(d);
		assert.deepEqual(Object.keys(tf.ssoNormal).sort(), toks);
		t.diagnostic(`SIGQUIT: 40 streams complete; exit ${stopMs} ms after the signal`);
	} finally { await d.stop(); }
});
