// Upstream failures before the answer begins, retries, and the token's
// books (DESIGN.md §5.4, §5.6, §5.8): what the client gets (status, error
// envelope, Retry-After), which tokens the fake saw, and the state the
// master persists in token.json afterwards. Each test has its own daemon
// and fake, so they run side by side.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { chat, readTokens, startWithFake, tokenEntry, tokenFile, tokenOf, until,
	waitTokens } from './lib.mjs';
import { ANSWER, UUID4, assertError, parseCompletion, parseStream, user } from './shapes.mjs';

const CHAT = '?path=/rest/app-chat/conversations/new';

// token.json with the given entries: { normal: {tok: extra}, super: {...} }.
function tokens({ normal = {}, sup = {} }) {
	const o = { ssoNormal: {}, ssoSuper: {} };
	for (const [t, x] of Object.entries(normal)) o.ssoNormal[t] = tokenEntry(x);
	for (const [t, x] of Object.entries(sup)) o.ssoSuper[t] = tokenEntry(x);
	return o;
}

function start(tok, grok = {}, fakeArgs = []) {
	return startWithFake({ workers: 1, tokens: tok, grok }, fakeArgs);
}

async function chatRecs(d) { return d.fake.requests(CHAT); }

// The master persists at most once a second: wait for the token's entry to
// satisfy pred, and return it.
async function tokenState(d, tok, pred, what) {
	const tf = await waitTokens(d, (j) => { const e = tokenOf(j, tok); return e && pred(e); },
		5000, what ?? `${tok} in token.json`);
	return tokenOf(tf, tok);
}

describe('401', { concurrency: true }, () => {
	test('is retried on another token; the failing one counts a failure', async () => {
		const d = await start(tokens({ normal: { 'fault-401-a': {},
			'tok-b': { remainingQueries: 50 } } }));
		try {
			const r = await chat(d, { model: 'grok-4.1', ...user('hi') });
			assert.equal(parseCompletion(r, 'grok-4.1').content, ANSWER);
			const recs = await chatRecs(d);
			assert.deepEqual(recs.map((x) => [x.token, x.status]),
				[['fault-401-a', 401], ['tok-b', 200]]);
			assert.notEqual(recs[0].request_id, recs[1].request_id);
			const bad = await tokenState(d, 'fault-401-a', (e) => e.failedCount === 1);
			assert.equal(bad.status, 'active', 'one 401 does not expire a token');
			assert.match(bad.lastFailureReason, /401/);
			assert.equal(typeof bad.lastFailureTime, 'number');
			const good = await tokenState(d, 'tok-b', (e) => e.remainingQueries === 79,
				'tok-b refreshed to the fake\'s 79');
			assert.equal(good.failedCount, 0);
			assert.equal(good.status, 'active');
		} finally { await d.stop(); }
	});

	test('a lone 401 token: 502 naming its fingerprint, never the token', async () => {
		// Two such tokens: the retries alternate between them, so
		// neither reaches three 401s in a row before the second request.
		const tok = 'fault-401-secretvalue';
		const d = await start(tokens({ normal: { [tok]: {}, 'fault-401-secretother': {} } }));
		try {
			for (const stream of [false, true]) {
				const r = await chat(d, { model: 'grok-4.1', stream, ...user('hi') });
				const e = assertError(r, 502);
				assert.match(e.message, /401/, e.message);
				assert.match(e.message, /tok:[0-9a-f]{8}/, 'names the token by its fingerprint');
				assert.ok(!r.body.includes('secret'), 'never the token itself');
				assert.match(e.message, /token\.json|admin/, 'says where to replace it');
			}
			assert.ok(!d.log.includes('secret'), 'nor in the log');
		} finally { await d.stop(); }
	});

	test('three 401s in a row expire the token in token.json; then 503', async () => {
		const d = await start(tokens({ normal: { 'fault-401-a': {} } }));
		try {
			let sent = 0;
			// However the retries are spread over requests, three upstream
			// 401s must expire it.
			await until(async () => {
				if ((await chatRecs(d)).length >= 3) return true;
				await chat(d, { model: 'grok-4.1', ...user('hi') });
				return ++sent > 3 ? 'gave up' : false;
			}, 10000, 'three upstream 401s');
			const recs = await chatRecs(d);
			assert.equal(recs.length, 3, 'no fourth try on an expired token');
			assert.ok(recs.every((x) => x.status === 401 && x.token === 'fault-401-a'));
			const e = await tokenState(d, 'fault-401-a', (x) => x.status === 'expired');
			assert.equal(e.failedCount, 3);
			assert.match(e.lastFailureReason, /401/);
			const r = await chat(d, { model: 'grok-4.1', ...user('hi') });
			const err = assertError(r, 503, 'no_token_available');
			assert.match(err.message, /token/);
			assert.equal((await chatRecs(d)).length, 3, 'an expired token is not tried');
		} finally { await d.stop(); }
	});

	test('retry_status_codes without 401: no retry, 502 at once', async () => {
		const d = await start(tokens({ normal: { 'fault-401-a': {},
			'tok-b': { remainingQueries: 50 } } }), { retry_status_codes: [429] });
		try {
			const e = assertError(await chat(d, { model: 'grok-4.1', ...user('hi') }), 502,
				'upstream_unauthorized');
			assert.match(e.message, /401/);
			assert.deepEqual((await chatRecs(d)).map((x) => [x.token, x.status]),
				[['fault-401-a', 401]]);
			const bad = await tokenState(d, 'fault-401-a', (x) => x.failedCount === 1);
			assert.equal(bad.status, 'active');
		} finally { await d.stop(); }
	});

	test('fault-401x2 recovers on retry; fresh request id and statsig per attempt', async () => {
		const d = await start(tokens({ normal: { 'fault-401x2-a': {} } }));
		try {
			const r = await chat(d, { model: 'grok-4.1', stream: true, ...user('hi') });
			assert.equal(parseStream(r, 'grok-4.1').content, ANSWER);
			const recs = await chatRecs(d);
			assert.deepEqual(recs.map((x) => x.status), [401, 401, 200]);
			const ids = recs.map((x) => x.request_id);
			assert.ok(ids.every((x) => UUID4.test(x)), ids.join(' '));
			assert.equal(new Set(ids).size, 3, 'a fresh x-xai-request-id per attempt');
			assert.equal(new Set(recs.map((x) => x.statsig)).size, 3, 'a fresh statsig per attempt');
			const e = await tokenState(d, 'fault-401x2-a', (x) => x.remainingQueries === 79);
			assert.equal(e.failedCount, 0, 'success resets the failures');
			assert.equal(e.status, 'active');
		} finally { await d.stop(); }
	});
});

describe('429 and cooling', { concurrency: true }, () => {
	test('is retried on another token; the limited one cools until the upstream reset', async () => {
		const d = await start(tokens({ normal: { 'fault-429-a': {},
			'tok-b': { remainingQueries: 50 } } }));
		try {
			const t0 = Date.now();
			const r = await chat(d, { model: 'grok-4.1', ...user('hi') });
			assert.equal(parseCompletion(r, 'grok-4.1').content, ANSWER);
			assert.deepEqual((await chatRecs(d)).map((x) => [x.token, x.status]),
				[['fault-429-a', 429], ['tok-b', 200]]);
			// The fake's rate-limits say 0 left and 3600 s to wait (-W).
			const e = await tokenState(d, 'fault-429-a',
				(x) => x.status === 'cooling' && x.cooldownUntil > t0 + 3000e3);
			assert.ok(e.cooldownUntil >= t0 + 3600e3 - 2000 &&
				e.cooldownUntil <= Date.now() + 3600e3 + 2000, `cooldownUntil ${e.cooldownUntil}`);
			assert.equal(e.remainingQueries, 0);
			assert.equal(e.failedCount, 0, 'a 429 is no failure of the token');
			assert.equal(tokenOf(readTokens(d), 'tok-b').status, 'active');
		} finally { await d.stop(); }
	});

	test('every token cooling: 429 with Retry-After at the earliest cooldown end', async () => {
		const d = await start(tokens({ normal: { 'fault-429-a': {} } }));
		try {
			for (const stream of [false, true]) {
				const r = await chat(d, { model: 'grok-4.1', stream, ...user('hi') });
				const e = assertError(r, 429, 'rate_limit_exceeded');
				assert.equal(e.type, 'rate_limit_error');
				assert.match(r.headers['retry-after'] ?? '', /^[1-9]\d*$/, 'Retry-After');
				assert.match(e.message, /grok-4\.1/);
			}
			// After the quota refresh the token waits for the upstream's reset.
			const t = await tokenState(d, 'fault-429-a', (x) => x.cooldownUntil > Date.now() + 3000e3);
			const before = (await chatRecs(d)).length;
			const r = await chat(d, { model: 'grok-4.1', ...user('hi') });
			assertError(r, 429, 'rate_limit_exceeded');
			const want = (t.cooldownUntil - Date.now()) / 1000;
			const got = Number(r.headers['retry-after']);
			assert.ok(Math.abs(got - want) <= 3, `Retry-After ${got}, cooldown ends in ${want} s`);
			assert.equal((await chatRecs(d)).length, before, 'a cooling token is not tried');
		} finally { await d.stop(); }
	});

	test('a token cooling in token.json is not used; Retry-After from its cooldownUntil', async () => {
		const until_ = Date.now() + 120e3;
		const d = await start(tokens({ normal: { 'tok-a': { status: 'cooling',
			cooldownUntil: until_, remainingQueries: 0 } } }));
		try {
			const r = await chat(d, { model: 'grok-4-expert', ...user('hi') });
			assertError(r, 429, 'rate_limit_exceeded');
			const got = Number(r.headers['retry-after']);
			assert.ok(got >= 117 && got <= 121, `Retry-After ${got}`);
			assert.deepEqual(await chatRecs(d), []);
		} finally { await d.stop(); }
	});

	test('a 429 cools the token only until the reset the upstream gives', async () => {
		// The fake's rate-limits now say: 0 left, back in 20 s.
		const d = await start(tokens({ normal: { 'fault-429-a': {} } }), {}, ['-W', '20']);
		try {
			const t0 = Date.now();
			assertError(await chat(d, { model: 'grok-4.1', ...user('hi') }), 429);
			await until(async () => (await d.fake.requests('?path=/rest/rate-limits')).length > 0,
				3000, 'the quota refresh');
			const e = await tokenState(d, 'fault-429-a', (x) => x.remainingQueries === 0 &&
				x.cooldownUntil > 0);
			assert.ok(e.cooldownUntil >= t0 + 18e3 && e.cooldownUntil <= Date.now() + 22e3,
				`cooldownUntil is ${((e.cooldownUntil - Date.now()) / 1000).toFixed(1)} s ` +
				'away; the upstream said 20 s');
		} finally { await d.stop(); }
	});
});

describe('403, 500, empty answers', { concurrency: true }, () => {
	for (const [fault, why] of [['403cf', /Cloudflare/], ['403bot', /anti-bot/]]) {
		test(`${fault}: 5 more tries on the same token, then 502 about cf_clearance/proxy`, async () => {
			const tok = `fault-${fault}-a`;
			const d = await start(tokens({ normal: { [tok]: {}, 'tok-b': { remainingQueries: 50 } } }));
			try {
				const r = await chat(d, { model: 'grok-4.1', ...user('hi') });
				const e = assertError(r, 502, 'upstream_blocked');
				assert.match(e.message, /403/);
				assert.match(e.message, why);
				assert.match(e.message, /cf_clearance/);
				assert.match(e.message, /proxy/);
				const recs = await chatRecs(d);
				assert.equal(recs.length, 6, '1 + 5 tries');
				assert.ok(recs.every((x) => x.token === tok && x.status === 403),
					'the address is blamed, not the token: no switch');
				assert.equal(new Set(recs.map((x) => x.request_id)).size, 6);
				const s = await tokenState(d, tok, (x) => x.lastUsedTime !== null);
				assert.equal(s.failedCount, 0, 'a 403 is not the token\'s fault');
				assert.equal(s.status, 'active');
				assert.equal(s.lastFailureReason, null);
			} finally { await d.stop(); }
		});
	}

	test('in-band anti-bot error before any token (code 7) counts as a 403', async () => {
		const d = await start(tokens({ normal: { 'fault-inbandfirst-a': {} } }));
		try {
			for (const stream of [false, true]) {
				const r = await chat(d, { model: 'grok-4.1', stream, ...user('hi') });
				const e = assertError(r, 502, 'upstream_blocked');
				assert.match(e.message, /anti-bot/);
			}
			const recs = await chatRecs(d);
			assert.equal(recs.length, 12, '6 tries per request');
			const s = await tokenState(d, 'fault-inbandfirst-a', (x) => x.lastUsedTime !== null);
			assert.equal(s.failedCount, 0);
			assert.equal(s.status, 'active');
		} finally { await d.stop(); }
	});

	test('upstream 500: no retry, 502 with the upstream status', async () => {
		const d = await start(tokens({ normal: { 'fault-500-a': {}, 'tok-b': { remainingQueries: 50 } } }));
		try {
			for (const stream of [false, true]) {
				const r = await chat(d, { model: 'grok-4.1', stream, ...user('hi') });
				const e = assertError(r, 502, 'upstream_error');
				assert.match(e.message, /500/);
			}
			assert.deepEqual((await chatRecs(d)).map((x) => [x.token, x.status]),
				[['fault-500-a', 500], ['fault-500-a', 500]]);
		} finally { await d.stop(); }
	});

	test('an empty 200: 502, no retry', async () => {
		const d = await start(tokens({ normal: { 'fault-empty-a': {} } }));
		try {
			for (const stream of [false, true]) {
				const r = await chat(d, { model: 'grok-4.1', stream, ...user('hi') });
				const e = assertError(r, 502, 'upstream_empty');
				assert.match(e.message, /no answer|empty/);
			}
			assert.equal((await chatRecs(d)).length, 2);
		} finally { await d.stop(); }
	});
});

describe('pools and counters', { concurrency: true }, () => {
	test('no token at all: 503 that says how to add tokens', async () => {
		const d = await startWithFake({ workers: 1 });
		try {
			for (const stream of [false, true]) {
				const r = await chat(d, { model: 'grok-4.1', stream, ...user('hi') });
				const e = assertError(r, 503, 'no_token_available');
				assert.match(e.message, /\/projects\/grok/);
				assert.match(e.message, /token\.json/);
				assert.equal(r.headers['retry-after'], undefined);
			}
			assert.deepEqual(await chatRecs(d), []);
		} finally { await d.stop(); }
	});

	test('only expired and disabled tokens: 503', async () => {
		const d = await start(tokens({ normal: { 'tok-x': { status: 'expired', failedCount: 3 },
			'tok-y': { status: 'disabled' } } }));
		try {
			assertError(await chat(d, { model: 'grok-4.1', ...user('hi') }), 503,
				'no_token_available');
			assert.deepEqual(await chatRecs(d), []);
		} finally { await d.stop(); }
	});

	test('grok-4-heavy needs a super token: 503 naming ssoSuper without one', async () => {
		const d = await start(tokenFile(['tok-n']));
		try {
			const e = assertError(await chat(d, { model: 'grok-4-heavy', ...user('hi') }), 503,
				'no_token_available');
			assert.match(e.message, /ssoSuper/);
			assert.match(e.message, /grok-4-heavy/);
			assert.equal(parseCompletion(await chat(d, { model: 'grok-4.1', ...user('hi') }),
				'grok-4.1').content, ANSWER);
			assert.deepEqual((await chatRecs(d)).map((x) => x.token), ['tok-n']);
		} finally { await d.stop(); }
	});

	test('normal tokens first; super when the normal ones are cooling', async () => {
		const d = await start(tokens({ normal: { 'tok-n': {} }, sup: { 'tok-s': {} } }));
		try {
			await chat(d, { model: 'grok-4.1', ...user('hi') });
			await chat(d, { model: 'grok-4-heavy', ...user('hi') });
			assert.deepEqual((await chatRecs(d)).map((x) => x.token), ['tok-n', 'tok-s']);
		} finally { await d.stop(); }
		const d2 = await start(tokens({ normal: { 'tok-n': { status: 'cooling',
			cooldownUntil: Date.now() + 600e3, remainingQueries: 0 } }, sup: { 'tok-s': {} } }));
		try {
			assert.equal(parseCompletion(await chat(d2, { model: 'grok-4.1', ...user('hi') }),
				'grok-4.1').content, ANSWER);
			assert.deepEqual((await chatRecs(d2)).map((x) => x.token), ['tok-s']);
		} finally { await d2.stop(); }
	});

	test('the quota is asked once a minute per token, not after every answer', async () => {
		const d = await start(tokens({ normal: { 'tok-n': { remainingQueries: 80 } } }));
		const RL = '?path=/rest/rate-limits';
		try {
			await d.fake.setToken({ token: 'tok-n', remaining: 60 });
			const rs = await Promise.all([...Array(8)].map((_, i) =>
				chat(d, { model: 'grok-4.1', stream: i % 2 === 1, ...user('hi') })));
			for (const r of rs) assert.equal(r.status, 200, r.body);
			await until(async () => (await d.fake.requests(RL)).length === 1, 3000, 'one refresh');
			await new Promise((res) => setTimeout(res, 300));
			assert.equal((await d.fake.requests(RL)).length, 1, 'one refresh for 8 answers');
			assert.equal((await chatRecs(d)).length, 8);
			assert.equal((await d.fake.tokens())['tok-n'].remaining, 52);
		} finally { await d.stop(); }
	});

	test('a low quota (8 or less) is asked again after an answer, once a second', async () => {
		const d = await start(tokens({ normal: { 'tok-n': { remainingQueries: 80 } } }));
		const RL = '?path=/rest/rate-limits';
		const refreshes = async () => (await d.fake.requests(RL)).length;
		const ok = async () => assert.equal((await chat(d, { model: 'grok-4.1', ...user('hi') })).status, 200);
		const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
		try {
			await d.fake.setToken({ token: 'tok-n', remaining: 10 });
			await ok(); // the first answer asks: 9 left
			await until(async () => (await refreshes()) === 1, 3000, 'the first refresh');
			await tokenState(d, 'tok-n', (x) => x.remainingQueries === 9, 'tok-n at 9');
			await ok(); // 8 left: low (whether asked depends on the clock)
			await tokenState(d, 'tok-n', (x) => x.remainingQueries === 8, 'tok-n at 8');
			await sleep(1100);
			const before = await refreshes();
			await d.fake.setToken({ token: 'tok-n', remaining: 3 }); // spent elsewhere
			await ok(); // low and over a second on: asks, and learns of the 2 left
			await until(async () => (await refreshes()) === before + 1, 3000, 'the refresh while low');
			await tokenState(d, 'tok-n', (x) => x.remainingQueries === 2, 'tok-n at 2');
		} finally { await d.stop(); }
	});

	test('remainingQueries goes down by the model\'s cost after the refresh', async () => {
		const d = await start(tokens({ normal: { 'tok-n': { remainingQueries: 80 } },
			sup: { 'tok-s': { remainingQueries: 80, heavyremainingQueries: 20 } } }));
		try {
			await d.fake.setToken({ token: 'tok-n', remaining: 50 });
			let want = 50;
			for (const [model, cost] of [['grok-4.1', 1], ['grok-4-expert', 4],
				['grok-4-fast-expert', 4], ['grok-3-fast', 1], ['grok-4.1-thinking', 1],
				['grok-4-fast', 1]]) {
				const r = await chat(d, { model, ...user('hi') });
				assert.equal(r.status, 200, r.body);
				want -= cost;
				await tokenState(d, 'tok-n', (x) => x.remainingQueries === want,
					`tok-n at ${want} after ${model}`);
				assert.equal((await d.fake.tokens())['tok-n'].remaining, want);
			}
			// grok-4-heavy: the super token's separate heavy quota.
			assert.equal((await chat(d, { model: 'grok-4-heavy', ...user('hi') })).status, 200);
			const s = await tokenState(d, 'tok-s', (x) => x.heavyremainingQueries === 19,
				'tok-s heavy 20 -> 19');
			assert.equal(s.remainingQueries, 80, 'heavy leaves the normal quota alone');
			assert.equal(tokenOf(readTokens(d), 'tok-n').remainingQueries, want);
		} finally { await d.stop(); }
	});
});
