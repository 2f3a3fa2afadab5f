// Upstream trouble once the answer flows (DESIGN.md §5.7, §5.9, §6, §8):
// in-band errors, malformed and differently framed NDJSON, a connection
// cut mid-answer, silence past the (shortened) timeouts, a slow drip, and
// a client that hangs up. A client must never hang: every stream ends with
// [DONE], every failure comes within a bound, and the upstream transfer
// stops when it is no longer needed.
import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, test } from 'node:test';

import { chat, openStream, request, sseEvents, startWithFake, tokenFile, until } from './lib.mjs';
import { ANSWER, assertError, parseCompletion, parseStream, user } from './shapes.mjs';

// Timeouts short enough for tests: grok.stream_first_response_timeout and
// stream_chunk_timeout in seconds. The worker checks them once a second,
// so a timeout of T s strikes between T and T + 1 s (+ slack).
const FIRST_S = 1;
const CHUNK_S = 1;
const SLACK_MS = 1500;

function start(grok = {}, toks = ['tok-a'], fakeArgs = []) {
	return startWithFake({ workers: 1, tokens: tokenFile(toks),
		grok: { stream_first_response_timeout: FIRST_S, stream_chunk_timeout: CHUNK_S, ...grok } },
	fakeArgs);
}

async function timed(p) {
	const t0 = Date.now();
	const r = await p;
	return [r, Date.now() - t0];
}

// A stream that began and then failed: the content so far, then exactly
// one error event, then [DONE], and nothing else. Returns { content, error }.
function parseBroken(r, model) {
	assert.equal(r.status, 200, r.body);
	assert.match(r.headers['content-type'], /^text\/event-stream/);
	assert.ok(r.body.endsWith('data: [DONE]\n\n'), `no [DONE] at the end:\n${r.body.slice(-300)}`);
	const ev = sseEvents(r.body);
	assert.equal(ev.at(-1), '[DONE]');
	assert.equal(ev.filter((e) => e === '[DONE]').length, 1);
	const err = ev.at(-2);
	assert.ok(err && err.error, `an error event before [DONE]: ${JSON.stringify(err)}`);
	assert.deepEqual(Object.keys(err), ['error']);
	assert.equal(typeof err.error.message, 'string');
	assert.equal(typeof err.error.type, 'string');
	assert.ok('code' in err.error && 'param' in err.error);
	const chunks = ev.slice(0, -2);
	assert.ok(chunks.length > 0, 'some of the answer came first');
	assert.ok(chunks.every((c) => !c.error && c.object === 'chat.completion.chunk' &&
		c.model === model && c.id === chunks[0].id));
	assert.ok(chunks.every((c) => c.choices.every((ch) => ch.finish_reason === null)),
		'no finish_reason in a broken stream');
	return { content: chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''),
		error: err.error };
}

// The fake holds no stream and no parked request any more: the daemon
// dropped the upstream transfer.
async function upstreamClosed(d, timeoutMs = 2000) {
	return until(async () => {
		const s = await d.fake.stats();
		return s.open_streams === 0 && s.suspended === 0 ? s : false;
	}, timeoutMs, 'the upstream transfer to close');
}

describe('errors inside the answer', { concurrency: true }, () => {
	test('in-band error mid-answer: an error event, then [DONE]; non-stream 502', async () => {
		const d = await start({}, ['fault-inband-a']);
		try {
			const b = parseBroken(await chat(d, { model: 'grok-4.1', stream: true, ...user('hi') }),
				'grok-4.1');
			assert.equal(b.content, 'Hello! I\'m', 'the three tokens before the error');
			assert.match(b.error.message, /rate limited/);
			assertError(await chat(d, { model: 'grok-4.1', ...user('hi') }), 502);
			// It began, so no retry: one upstream request each.
			assert.equal((await d.fake.requests('?path=/rest/app-chat/conversations/new')).length, 2);
		} finally { await d.stop(); }
	});

	test('response.error mid-answer (usage limit): an error event, then [DONE]', async () => {
		const d = await start({}, ['fault-resperror-a']);
		try {
			const b = parseBroken(await chat(d, { model: 'grok-4.1', stream: true, ...user('hi') }),
				'grok-4.1');
			assert.equal(b.content, 'Hello! I\'m');
			assert.match(b.error.message, /usage limit/);
			const e = assertError(await chat(d, { model: 'grok-4.1', ...user('hi') }), 502);
			assert.match(e.message, /usage limit/);
		} finally { await d.stop(); }
	});

	test('modelResponse.error: an error event after the text; non-stream 502', async () => {
		const d = await start({}, ['fault-modelerror-a']);
		try {
			const b = parseBroken(await chat(d, { model: 'grok-4.1', stream: true, ...user('hi') }),
				'grok-4.1');
			assert.equal(b.content, ANSWER);
			assert.match(b.error.message, /failed to generate/);
			const e = assertError(await chat(d, { model: 'grok-4.1', ...user('hi') }), 502);
			assert.match(e.message, /failed to generate/);
		} finally { await d.stop(); }
	});

	for (const fault of ['malformed', 'datapfx', 'runon']) {
		test(`${fault} framing: the answer comes through whole`, async () => {
			const d = await start();
			try {
				for (const model of ['grok-4.1', 'grok-4.1-thinking']) {
					const body = { model, ...user(`hi [fault=${fault}]`) };
					const s = parseStream(await chat(d, { ...body, stream: true }), model);
					const n = parseCompletion(await chat(d, body), model);
					const want = model === 'grok-4.1' ? ANSWER : s.content;
					assert.ok(s.content.endsWith(ANSWER), s.content);
					assert.equal(n.content, want);
					assert.equal(s.content, want);
					if (model !== 'grok-4.1') assert.match(s.content, /^<think>\n[\s\S]*Rayleigh scattering - Wikipedia/);
				}
			} finally { await d.stop(); }
		});
	}
});

describe('cut connections', { concurrency: true }, () => {
	test('cut mid-answer: an error event and [DONE] at once; non-stream 502', async () => {
		const d = await start({}, ['fault-cut-a']);
		try {
			const [r, ms] = await timed(chat(d, { model: 'grok-4.1', stream: true, ...user('hi') }));
			const b = parseBroken(r, 'grok-4.1');
			assert.ok(ms < 1000, `took ${ms} ms`);
			assert.ok(ANSWER.startsWith(b.content) && b.content.length > 0);
			assert.equal(b.error.code, 'upstream_cut');
			const [n, ms2] = await timed(chat(d, { model: 'grok-4.1', ...user('hi') }));
			const e = assertError(n, 502, 'upstream_cut');
			assert.match(e.message, /broke off/);
			assert.ok(ms2 < 1000);
		} finally { await d.stop(); }
	});

	test('[cutafter=N] at several points, never a hang', async () => {
		const d = await start();
		try {
			for (const n of [0, 1, 2, 3, 10, 40]) {
				for (const stream of [true, false]) {
					const [r, ms] = await timed(chat(d, { model: 'grok-4.1', stream,
						...user(`hi [cutafter=${n}]`) }));
					const what = `cutafter=${n} stream=${stream}: ${r.status} ${r.body.slice(-200)}`;
					assert.ok(ms < 1000, `${what} took ${ms} ms`);
					if (r.status === 200) {
						assert.ok(stream, what);
						parseBroken(r, 'grok-4.1');
					} else {
						assertError(r, 502, 'upstream_cut');
					}
				}
			}
			assert.equal((await request(d.url('/healthz'))).status, 200);
		} finally { await d.stop(); }
	});
});

describe('silence and timeouts', { concurrency: true }, () => {
	test('silent after some tokens: stream_chunk_timeout ends it with an error event', async () => {
		const d = await start();
		try {
			const [r, ms] = await timed(chat(d, { model: 'grok-4.1', stream: true,
				...user('hi [stallafter=5]') }));
			const b = parseBroken(r, 'grok-4.1');
			assert.equal(b.content, 'Hello! I\'m');
			assert.equal(b.error.code, 'upstream_timeout');
			assert.match(b.error.message, /stream_chunk_timeout/);
			assert.ok(ms >= CHUNK_S * 1000 && ms < CHUNK_S * 1000 + SLACK_MS, `took ${ms} ms`);
			await upstreamClosed(d);
			const [n, ms2] = await timed(chat(d, { model: 'grok-4.1', ...user('hi [stallafter=5]') }));
			const e = assertError(n, 504, 'upstream_timeout');
			assert.match(e.message, /stream_chunk_timeout/);
			assert.ok(ms2 < CHUNK_S * 1000 + SLACK_MS, `took ${ms2} ms`);
			await upstreamClosed(d);
		} finally { await d.stop(); }
	});

	for (const fault of ['stall', 'stallfirst']) {
		test(`${fault}: 504 after stream_first_response_timeout, both modes`, async () => {
			const d = await start({}, [`fault-${fault}-a`]);
			try {
				for (const stream of [true, false]) {
					const [r, ms] = await timed(chat(d, { model: 'grok-4.1', stream, ...user('hi') }));
					const e = assertError(r, 504, 'upstream_timeout');
					assert.match(e.message, /stream_first_response_timeout/);
					assert.ok(ms >= FIRST_S * 1000 && ms < FIRST_S * 1000 + SLACK_MS, `took ${ms} ms`);
					await upstreamClosed(d);
				}
				const s = await d.fake.stats();
				assert.equal(s.by_path['/rest/app-chat/conversations/new'], 2, 'a timeout is not retried');
			} finally { await d.stop(); }
		});
	}

	test('stream_total_timeout ends a stream that keeps trickling', async () => {
		const d = await start({ stream_total_timeout: 2, stream_chunk_timeout: 5 });
		try {
			const [r, ms] = await timed(chat(d, { model: 'grok-4.1', stream: true,
				...user('hi [tokens=200] [interval=50]') }));
			const b = parseBroken(r, 'grok-4.1');
			assert.equal(b.error.code, 'upstream_timeout');
			assert.match(b.error.message, /stream_total_timeout/);
			assert.ok(b.content.length > 0);
			assert.ok(ms >= 2000 && ms < 2000 + SLACK_MS, `took ${ms} ms`);
			await upstreamClosed(d);
		} finally { await d.stop(); }
	});

	test('15 s of upstream silence mid-stream: a ": ping" comment keeps the client', async () => {
		const d = await start({ stream_chunk_timeout: 30 });
		try {
			const s = await openStream(d, { model: 'grok-4.1', stream: true,
				...user('hi [stallafter=3]') });
			await s.waitFor((t) => t.includes('"content":"Hello"'), 3000);
			const t0 = Date.now();
			await s.waitFor((t) => t.includes('\n: ping\n\n') || t.startsWith(': ping\n\n'), 17000);
			const ms = Date.now() - t0;
			assert.ok(ms >= 13000 && ms < 17000, `ping after ${ms} ms`);
			assert.equal(s.ended(), false);
			s.close();
			await upstreamClosed(d);
		} finally { await d.stop(); }
	});

	test('a drip (a line every 500 ms) under a 1 s chunk timeout completes', async () => {
		const d = await start({}, ['fault-drip-a']);
		try {
			const [r, ms] = await timed(chat(d, { model: 'grok-4.1', stream: true,
				...user('hi [tokens=4]') }));
			const s = parseStream(r, 'grok-4.1');
			assert.equal(s.content, 'Hello! I\'m Grok');
			assert.ok(ms >= 3000, `9 lines 500 ms apart took only ${ms} ms`);
			const n = parseCompletion(await chat(d, { model: 'grok-4.1', ...user('hi [tokens=4]') }),
				'grok-4.1');
			assert.equal(n.content, s.content);
		} finally { await d.stop(); }
	});
});

describe('clients that hang up', { concurrency: true }, () => {
	test('mid-stream: the upstream stream is dropped at once; the daemon keeps serving', async () => {
		const d = await start({ stream_chunk_timeout: 30, stream_total_timeout: 600 });
		try {
			const s = await openStream(d, { model: 'grok-4.1', stream: true,
				...user('hi [tokens=400] [interval=100]') });
			assert.equal(s.status, 200);
			await s.waitFor((t) => (t.match(/^data: /gm) || []).length >= 3, 5000);
			assert.equal((await d.fake.stats()).open_streams, 1);
			const t0 = Date.now();
			s.close();
			const st = await upstreamClosed(d, 2000);
			assert.ok(Date.now() - t0 < 2000);
			assert.equal(st.streams_aborted, 1);
			assert.equal(st.streams_done, 0);
			// Still serving, and the token is free for the next one.
			const r = await chat(d, { model: 'grok-4.1', stream: true, ...user('hi') });
			assert.equal(parseStream(r, 'grok-4.1').content, ANSWER);
		} finally { await d.stop(); }
	});

	test('before the first byte: the waiting upstream request is dropped', async () => {
		const d = await start({ stream_first_response_timeout: 30 });
		try {
			for (const stream of [true, false]) {
				const req = http.request(d.url('/v1/chat/completions'), { method: 'POST',
					headers: { 'content-type': 'application/json' }, agent: false });
				let answered = false;
				req.on('response', () => { answered = true; });
				req.on('error', () => {});
				req.end(JSON.stringify({ model: 'grok-4.1', stream,
					...user('hi [firstdelay=20000]') }));
				// The fake parks the request for 20 s; hang up meanwhile.
				await until(async () => (await d.fake.stats()).suspended === 1, 3000,
					'the fake to park the request');
				assert.equal(answered, false, 'nothing is sent before upstream answers');
				req.destroy();
				await upstreamClosed(d, 2000);
			}
			const r = await chat(d, { model: 'grok-4.1', ...user('hi') });
			assert.equal(parseCompletion(r, 'grok-4.1').content, ANSWER);
		} finally { await d.stop(); }
	});

	// The hang-up watch belongs to the connection, not to one request:
	// the second request of a keep-alive connection is watched too.
	test('on a keep-alive connection, a hang-up during its second request', async () => {
		const d = await start({ stream_first_response_timeout: 30 });
		const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
		try {
			const post = (message) => http.request(d.url('/v1/chat/completions'),
				{ method: 'POST', headers: { 'content-type': 'application/json' }, agent });
			const first = await new Promise((resolve, reject) => {
				const req = post();
				req.on('response', (res) => {
					let body = '';
					res.on('data', (b) => { body += b; });
					res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
						body, json: JSON.parse(body), socket: req.socket }));
				});
				req.on('error', reject);
				req.end(JSON.stringify({ model: 'grok-4.1', ...user('hi') }));
			});
			assert.equal(parseCompletion(first, 'grok-4.1').content, ANSWER);
			const req = post();
			req.on('error', () => {});
			req.end(JSON.stringify({ model: 'grok-4.1', ...user('hi [firstdelay=20000]') }));
			await until(async () => (await d.fake.stats()).suspended === 1, 3000,
				'the fake to park the request');
			assert.equal(req.socket, first.socket, 'the same connection');
			req.destroy();
			await upstreamClosed(d, 2000);
		} finally { agent.destroy(); await d.stop(); }
	});
});
