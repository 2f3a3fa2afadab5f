// Fault injection (issue 7): kill -9 of processes while clients stream.
// A worker dies in the middle of 200 streams; workers die while they
// hold the token table's robust mutex; the master dies under load. Each
// test checks what the clients saw, that the dead process was replaced
// (or, for the master, that nothing outlived it), and that the token
// state and token.json are intact afterwards.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { test } from 'node:test';

import { alive, chat, connOwners, metrics, readTokens, sleep, startDaemon,
	startWithFake, streamChat, tokenFile, tokenFileValid, until, workersOf }
	from './lib.mjs';

// A stream of 100 answer tokens, one every 50 ms: about 5 s long.
const LONG = { model: 'grok-4.1', stream: true,
	messages: [{ role: 'user', content: 'hi [interval=50] [tokens=100]' }] };
const SHORT = { model: 'grok-4.1', messages: [{ role: 'user', content: 'hi [tokens=1]' }] };

// The fake's answer tokens of LONG, as the client sees them joined.
function content(r) {
	return r.events.filter((e) => e !== '[DONE]')
		.map((e) => e.choices?.[0]?.delta?.content ?? '').join('');
}

// Every token of the file in token.json, each entry sane.
function assertTokens(d, toks) {
	assert.ok(tokenFileValid(d.tokenPath), 'token.json is valid JSON');
	const tf = readTokens(d);
	assert.deepEqual(Object.keys(tf.ssoNormal).sort(), [...toks].sort());
	for (const t of toks) {
		const e = tf.ssoNormal[t];
		assert.equal(e.status, 'active', `${t}: ${JSON.stringify(e)}`);
		assert.equal(e.failedCount, 0, `${t}: ${JSON.stringify(e)}`);
	}
}

test('kill -9 of a worker in the middle of 200 streams', async (t) => {
	const toks = Array.from({ length: 10 }, (_, i) => `kill-worker-tok-${i}`);
	const d = await startWithFake({ workers: 2, tokens: tokenFile(toks) },
		['-q', '1000000']);
	try {
		const ss = Array.from({ length: 200 }, () => streamChat(d, LONG, {}, 30000));
		await Promise.race([Promise.all(ss.map((s) => s.firstByte)),
			sleep(10000).then(() => { throw new Error('200 streams did not start in 10 s'); })]);
		await sleep(300);
		const ws = workersOf(d);
		assert.equal(ws.length, 2);
		const owners = connOwners(d.port, ss.map((s) => s.conn.port), ws.map((w) => w.pid));
		assert.equal(owners.size, 200, 'every stream is served by a worker');
		const per = ws.map((w) => [...owners.values()].filter((p) => p === w.pid).length);
		const before = await metrics(d);
		assert.equal(before.webproxyd_tokens_inflight, 200, 'each stream holds a token');
		// The busier worker dies; each one serves some of the streams.
		const victim = per[0] >= per[1] ? ws[0] : ws[1];
		const other = victim === ws[0] ? ws[1] : ws[0];
		assert.ok(Math.min(...per) > 0, `streams per worker: ${per}`);
		const from = d.log.length;
		const tKill = Date.now();
		process.kill(victim.pid, 'SIGKILL');
		const rs = await Promise.all(ss);
		let cut = 0, done = 0;
		const full = content(rs.find((r) => r.done) ?? { events: [] });
		assert.ok(full.length > 0);
		rs.forEach((r, i) => {
			const owner = owners.get(ss[i].conn.port);
			assert.equal(r.bad, null, `stream ${i}: unparsable events`);
			if (owner === victim.pid) {
				// A closed connection, at once: not a hang, not [DONE].
				assert.ok(r.cut, `stream ${i} of the dead worker completed?`);
				assert.notEqual(r.error, 'hang');
				assert.ok(r.end - tKill < 2000, `closed ${r.end - tKill} ms after the kill`);
				cut++;
			} else {
				assert.ok(r.done, `stream ${i} of worker ${other.n} broken: ${r.error}\n${r.text.slice(-300)}`);
				assert.equal(content(r), full, `stream ${i}: the whole answer`);
				done++;
			}
		});
		assert.equal(cut, Math.max(...per));
		assert.equal(done, Math.min(...per));
		await d.waitLog(new RegExp(`worker ${victim.n} \\(pid ${victim.pid}\\) killed by signal 9`),
			5000, from);
		const again = await until(() => workersOf(d).find((w) => w.n === victim.n &&
			w.pid !== victim.pid), 5000, `worker ${victim.n} respawned`);
		assert.ok(alive(again.pid));
		// The new worker serves; the pool is whole.
		for (let i = 0; i < 20; i++) assert.equal((await chat(d, SHORT)).status, 200);
		const m = await until(async () => {
			const x = await metrics(d);
			return x.webproxyd_requests_active <= 1 ? x : false;
		}, 5000, 'no request active but /metrics itself');
		assert.equal(m.webproxyd_respawns_total, 1);
		// No token stays counted in flight for the dead worker's streams
		// (their leases died with it: the master must give them back).
		let last;
		try {
			await until(async () => (last = await metrics(d)).webproxyd_tokens_inflight === 0,
				5000, 'webproxyd_tokens_inflight back to 0');
		} catch {
			assert.fail(`webproxyd_tokens_inflight stays ${last.webproxyd_tokens_inflight} ` +
				`after worker ${victim.n} died with ${cut} streams (webproxyd_requests_active ` +
				`${last.webproxyd_requests_active}): the dead worker's token leases are never released`);
		}
		assertTokens(d, toks);
		const ex = await d.stop();
		assert.equal(ex.code, 0);
		assertTokens(d, toks);
		t.diagnostic(`200 streams: worker ${victim.n} killed with ${cut}, all cut within ` +
			`${Math.max(...rs.filter((r) => r.cut).map((r) => r.end - tKill))} ms; worker ` +
			`${other.n}'s ${done} complete; respawned as pid ${again.pid}`);
	} finally { await d.stop(); }
});

// ---- a worker killed while it holds the token table's lock ----------

// The test stops a worker (SIGSTOP), reads the token table's header out
// of the shared segment through /proc/PID/mem, and kills the worker only
// when it is the mutex's owner. Offsets in struct tok_table (shared/tok.c,
// x86-64): magic 0, cap 8, busy 24, count 32, the robust mutex 144 (its
// first word is the owner's TID), lock.owner 192. The test checks the
// magic, cap and count before trusting them.
const TOK_MAGIC = Buffer.from('314c4241544b4f54', 'hex'); // "TOKTABL1", LE
const OFF = { cap: 8, busy: 24, count: 32, mutex: 144 };

function shmRange(pid) {
	const l = fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')
		.find((x) => / rw-s .*\/dev\/shm\/webproxyd/.test(x));
	if (!l) return null;
	return l.split(' ')[0].split('-').map((h) => parseInt(h, 16));
}

function readMem(pid, addr, len) {
	const fd = fs.openSync(`/proc/${pid}/mem`, 'r');
	try {
		const b = Buffer.alloc(len);
		fs.readSync(fd, b, 0, len, addr);
		return b;
	} finally { fs.closeSync(fd); }
}

function findTokTable(pid) {
	const range = shmRange(pid);
	if (!range) return null;
	const buf = readMem(pid, range[0], range[1] - range[0]);
	for (let o = buf.indexOf(TOK_MAGIC); o >= 0; o = buf.indexOf(TOK_MAGIC, o + 1))
		if (o % 64 === 0)
			return { addr: range[0] + o, cap: buf.readUInt32LE(o + OFF.cap),
				count: buf.readUInt32LE(o + OFF.count) };
	return null;
}

function procState(pid) {
	try {
		const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
		return s.slice(s.lastIndexOf(')') + 2)[0];
	} catch { return 'X'; }
}

test('workers killed while holding the token-table lock: recovered, nothing lost', async (t) => {
	const N = 2000;
	const toks = Array.from({ length: N }, (_, i) => `lock-tok-${i}`);
	const d = await startWithFake({ workers: 3, tokens: tokenFile(toks),
		grok: { max_tokens: N } }, ['-q', '1000000']);
	const agent = new http.Agent({ keepAlive: true, maxSockets: 12 });
	let stop = false;
	const seen = { ok: 0, failed: 0 };
	const lanes = [];
	try {
		const tt = findTokTable(workersOf(d)[0].pid);
		assert.ok(tt, 'the token table is in the shared segment');
		assert.equal(tt.cap, N, 'struct tok_table layout changed: update OFF');
		assert.equal(tt.count, N, 'struct tok_table layout changed: update OFF');
		const req = (path, body) => new Promise((resolve) => {
			const r = http.request(d.url(path), { agent, method: body ? 'POST' : 'GET',
				headers: { 'content-type': 'application/json' } }, (res) => {
				res.resume();
				res.on('end', () => resolve(res.statusCode));
				res.on('error', () => resolve(0));
			});
			r.on('error', () => resolve(0));
			r.end(body && JSON.stringify(body));
		});
		// Picks, charges and releases (write sections) on keep-alive
		// connections; once a worker died in one, /metrics too (the table
		// read in batches: read sections).
		let reads = false;
		for (let i = 0; i < 8; i++)
			lanes.push((async () => { while (!stop) (await req('/v1/chat/completions', SHORT)) === 200 ? seen.ok++ : seen.failed++; })());
		for (let i = 0; i < 2; i++)
			lanes.push((async () => {
				while (!stop) {
					if (!reads) { await sleep(50); continue; }
					(await req('/metrics')) === 200 ? seen.ok++ : seen.failed++;
				}
			})());
		const kills = [];
		let tries = 0, ws = [];
		const t0 = Date.now();
		// Six kills inside the lock, at least one inside a writing section
		// (busy set: the next owner rebuilds the table), within 40 s.
		while (kills.length < 6 && Date.now() - t0 < 40000) {
			if (tries % 100 === 0 || ws.length === 0)
				ws = workersOf(d).filter((w) => alive(w.pid));
			if (ws.length === 0) { await sleep(20); continue; }
			const w = ws[tries++ % ws.length];
			try { process.kill(w.pid, 'SIGSTOP'); } catch { ws = []; continue; }
			for (let k = 0; k < 2000 && procState(w.pid) !== 'T'; k++);
			const h = readMem(w.pid, tt.addr, 256);
			const owner = h.readUInt32LE(OFF.mutex) & 0x3fffffff;
			const busy = h.readUInt32LE(OFF.busy);
			const wantBusy = !kills.some((k) => k.busy) && Date.now() - t0 < 25000;
			if (owner === w.pid && (!wantBusy || busy === 1)) {
				process.kill(w.pid, 'SIGKILL');
				kills.push({ pid: w.pid, busy });
				reads = kills.some((k) => k.busy);
				ws = [];
			} else process.kill(w.pid, 'SIGCONT');
			await new Promise((r) => setImmediate(r));
		}
		assert.ok(kills.length >= 1, `no worker caught holding the lock in ${tries} tries`);
		assert.ok(kills.some((k) => k.busy), `no kill inside a writing section: ${JSON.stringify(kills)}`);
		await sleep(500);
		stop = true;
		await Promise.all(lanes);
		const m = await metrics(d);
		// Every death inside the lock was seen by the next owner.
		assert.equal(m.webproxyd_lock_recoveries_total, kills.length,
			`recoveries vs kills inside the lock: ${JSON.stringify(kills)}`);
		assert.equal(m['webproxyd_tokens{type="ssoNormal"}'], N);
		assert.doesNotMatch(d.log, /not recoverable|lock lost/i);
		// Whole and serving: every worker slot runs, chats pass.
		await until(() => workersOf(d).length === 3, 10000, 'three workers again');
		for (let i = 0; i < 30; i++) assert.equal((await chat(d, SHORT)).status, 200);
		const tf = readTokens(d);
		assert.equal(Object.keys(tf.ssoNormal).length, N);
		// Nothing is in flight any more: no token may stay counted.
		const left = (await metrics(d)).webproxyd_tokens_inflight;
		const ex = await d.stop();
		assert.equal(ex.code, 0, d.log.slice(-2000));
		assert.ok(tokenFileValid(d.tokenPath));
		assert.equal(Object.keys(readTokens(d).ssoNormal).length, N);
		t.diagnostic(`lock kills ${JSON.stringify(kills)} in ${tries} tries; ` +
			`${seen.ok} requests ok, ${seen.failed} cut; tokens in flight at the end: ${left}`);
		assert.equal(left, 0, `${left} tokens stay counted in flight after ${kills.length} ` +
			'workers died inside the token lock (a lease taken in tok_pick, or dropped from ' +
			'the journal before tok_release, is lost with its worker)');
	} finally {
		stop = true;
		await Promise.all(lanes);
		agent.destroy();
		for (const w of workersOf(d)) try { process.kill(w.pid, 'SIGCONT'); } catch { /* gone */ }
		await d.stop();
	}
});

test('kill -9 of the master with 40 streams running: children gone in 1 s, restart at once', async (t) => {
	const toks = ['master-kill-a', 'master-kill-b'];
	const d = await startWithFake({ workers: 2, tokens: tokenFile(toks) }, ['-q', '1000000']);
	let again;
	try {
		const ss = Array.from({ length: 40 }, () => streamChat(d, LONG, {}, 20000));
		await Promise.all(ss.map((s) => s.firstByte));
		const kids = d.children().map((c) => c.pid);
		assert.equal(kids.length, 3);
		const port = d.port;
		const t0 = Date.now();
		d.signal('SIGKILL');
		await d.exited;
		const gone = await until(() => kids.every((p) => !alive(p)) && Date.now() - t0,
			1000, 'every child gone within a second of the master', 10);
		// Every client saw its connection close, none waits forever.
		const rs = await Promise.all(ss);
		for (const r of rs) {
			assert.ok(r.cut && r.error !== 'hang', `a stream went on: ${r.error}`);
			assert.ok(r.ms < 20000);
		}
		assert.ok(!fs.readdirSync('/dev/shm').includes(`webproxyd.${d.pid}`), 'stale segment');
		assert.ok(tokenFileValid(d.tokenPath), 'token.json survived the master');
		// Same folder, same port, at once.
		const t1 = Date.now();
		again = await startDaemon({ dir: d.dir, workers: 2,
			server: { listen: `127.0.0.1:${port}` },
			grok: { upstream_url: d.fake.url, assets_url: d.fake.url } });
		const startMs = Date.now() - t1;
		assert.equal(again.port, port);
		const r = await chat(again, SHORT);
		assert.equal(r.status, 200, r.body);
		assert.deepEqual(Object.keys(readTokens(again).ssoNormal).sort(), toks);
		t.diagnostic(`children gone ${gone} ms after the kill; restart ready in ${startMs} ms`);
	} finally {
		if (again) await again.stop();
		await d.fake.stop();
	}
});
