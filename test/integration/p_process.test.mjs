// Processes: titles, a killed worker is respawned, SIGTERM persists the
// tokens and leaves nothing behind, a killed master takes its children.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';

import { alive, chat, request, shmSegments, sleep, startDaemon, startWithFake,
	tokenFile, workersOf } from './lib.mjs';

test('process titles name each role', async () => {
	const d = await startDaemon({ workers: 2, tokens: tokenFile(['n1']) });
	try {
		const titles = d.children().map((c) => c.args).sort();
		assert.deepEqual(titles, ['webproxyd: janitor', 'webproxyd: worker 1',
			'webproxyd: worker 2']);
		const r = fs.readFileSync(`/proc/${d.pid}/cmdline`, 'utf8');
		assert.match(r, /^webproxyd: master/);
	} finally { await d.stop(); }
});

test('kill -9 of a worker: logged, respawned, requests succeed', async () => {
	const d = await startDaemon({ workers: 2, tokens: tokenFile(['n1']) });
	try {
		const w1 = d.children().find((c) => c.args === 'webproxyd: worker 1');
		const from = d.log.length;
		process.kill(w1.pid, 'SIGKILL');
		await d.waitLog(new RegExp(`worker 1 \\(pid ${w1.pid}\\) killed by signal 9`), 5000, from);
		let again;
		for (let i = 0; i < 100 && !again; i++) {
			again = d.children().find((c) => c.args === 'webproxyd: worker 1' && c.pid !== w1.pid);
			await sleep(50);
		}
		assert.ok(again, 'worker 1 was not respawned');
		for (let i = 0; i < 20; i++)
			assert.equal((await request(d.url('/v1/models'))).status, 200);
		const m = await request(d.url('/metrics'));
		assert.match(m.body, /^webproxyd_respawns_total 1$/m);
	} finally { await d.stop(); }
});

test('SIGTERM writes token.json in the seed schema and leaves nothing behind', async () => {
	const seed = tokenFile(['your-token-1', 'your-token-2'], ['your-super-token']);
	seed.ssoNormal['your-token-1'].futureField = { kept: true };
	const d = await startDaemon({ tokens: seed });
	const kids = d.children().map((c) => c.pid);
	assert.equal(kids.length, 3);
	fs.unlinkSync(d.tokenPath); // the master must write it anew at stop
	const ex = await d.stop('SIGTERM');
	assert.equal(ex.code, 0, d.log);
	const st = fs.statSync(d.tokenPath);
	assert.equal(st.mode & 0o777, 0o600);
	const tf = JSON.parse(fs.readFileSync(d.tokenPath, 'utf8'));
	assert.deepEqual(Object.keys(tf.ssoNormal).sort(), ['your-token-1', 'your-token-2']);
	assert.deepEqual(Object.keys(tf.ssoSuper), ['your-super-token']);
	const e = tf.ssoNormal['your-token-1'];
	for (const k of ['createdTime', 'remainingQueries', 'heavyremainingQueries',
		'status', 'failedCount', 'lastFailureTime', 'lastFailureReason', 'tags', 'note'])
		assert.ok(k in e, `missing ${k}`);
	assert.equal(e.createdTime, 1706745600000);
	assert.equal(e.status, 'active');
	assert.deepEqual(e.futureField, { kept: true });
	await sleep(100);
	for (const p of kids) assert.equal(alive(p), false, `child ${p} left running`);
	assert.deepEqual(shmSegments(), []);
	assert.equal(fs.existsSync(`${d.dir}/webproxyd.pid`), false);
});

test('kill -9 of the master: every child exits within a second', async () => {
	const d = await startDaemon({ workers: 2, tokens: tokenFile(['n1']) });
	const kids = d.children().map((c) => c.pid);
	assert.equal(kids.length, 3);
	d.signal('SIGKILL');
	await d.exited;
	await sleep(1000);
	for (const p of kids) assert.equal(alive(p), false, `child ${p} outlived the master`);
	assert.deepEqual(shmSegments(), []);
	// A new start on the same data folder works at once.
	const again = await startDaemon({ dir: d.dir, workers: 1 });
	assert.equal((await request(again.url('/healthz'))).status, 200);
	await again.stop();
});

test('SIGQUIT: graceful stop, exit 0', async () => {
	const d = await startDaemon({ workers: 2, tokens: tokenFile(['n1']) });
	const ex = await d.stop('SIGQUIT');
	assert.equal(ex.code, 0, d.log);
	assert.match(d.log, /graceful stop/);
	assert.match(d.log, /webproxyd stopped/);
});

// An idle worker sleeps in epoll_wait until its once-a-second tick: it
// must not keep waking for a timer curl no longer has (each wake-up is a
// voluntary context switch).
test('an idle worker after chats wakes about once a second, not every ms', async () => {
	const d = await startWithFake({ workers: 1, tokens: tokenFile(['n1']) });
	try {
		for (let i = 0; i < 3; i++)
			assert.equal((await chat(d, { model: 'grok-3-fast',
				messages: [{ role: 'user', content: 'hi' }] })).status, 200);
		await sleep(300);
		const [w] = workersOf(d);
		const switches = () => Number(fs.readFileSync(`/proc/${w.pid}/status`, 'utf8')
			.match(/^voluntary_ctxt_switches:\s+(\d+)/m)[1]);
		const before = switches();
		await sleep(2000);
		const woke = switches() - before;
		assert.ok(woke <= 20, `idle worker woke ${woke} times in 2 s`);
	} finally { await d.stop(); }
});
